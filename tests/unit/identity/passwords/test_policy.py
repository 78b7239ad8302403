"""The NIST SP 800-63B policy: decisions with reasons, on the published common-password list."""

from __future__ import annotations

import random
import secrets
import time

import pytest
from tests.unit.crypto.conformance import conformance_path
from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-untyped]

from bastion.identity.passwords import (
    Accepted,
    PasswordPolicy,
    PasswordSettings,
    Rejected,
    RejectionReason,
    UserInfo,
)
from bastion.identity.passwords.dictionaries import load_zxcvbn

R = RejectionReason


@pytest.fixture(scope="module")
def policy() -> PasswordPolicy:
    return PasswordPolicy(PasswordSettings())  # the real defaults


def _reasons(policy: PasswordPolicy, password: str, user: UserInfo | None = None) -> set[R]:
    decision = policy.evaluate(password, user)
    assert isinstance(decision, Rejected), password
    return set(decision.reasons)


def test_every_one_of_the_10000_most_common_passwords_is_rejected(policy: PasswordPolicy) -> None:
    path = conformance_path("passwords", "top-10000.txt")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 10_000
    accepted = [line for line in lines if policy.evaluate(line).ok]
    assert accepted == []


def test_strong_random_passphrases_are_accepted(policy: PasswordPolicy) -> None:
    words = FREQUENCY_LISTS["english_wikipedia"][3_000:20_000]
    rng = random.Random(20_260_101)  # noqa: S311 - reproducible test data, not secrets
    for _ in range(40):
        phrase = " ".join(rng.choice(words) for _ in range(4))
        assert policy.evaluate(phrase) == Accepted(score=4), phrase
    for _ in range(50):
        assert policy.evaluate(secrets.token_urlsafe(16)).ok


@pytest.mark.parametrize(
    "password",
    [
        "🔒🐍🌍🎉🔑🐱🍕🚀🌈⚡🎸🦄",
        "我的密码是非常安全的长句子",
        "パスワードは長くて安全です",
        "ключ от старого маяка",
        "a 🦄 ate 3 ☕ in Zürich",
    ],
)
def test_any_unicode_is_accepted_when_long_enough(policy: PasswordPolicy, password: str) -> None:
    assert policy.evaluate(password).ok


def test_length_is_counted_in_code_points_after_nfkc(policy: PasswordPolicy) -> None:
    assert _reasons(policy, "🔒🐍🌍🎉🔑🐱🍕🚀🌈⚡🎸") == {R.TOO_SHORT}  # 11 emoji, 44 bytes
    assert _reasons(policy, "x7#Kp2!vQz7") == {R.TOO_SHORT}
    assert policy.evaluate("x7#Kp2!vQz7m").ok  # 12 characters


def test_at_least_64_characters_are_allowed(policy: PasswordPolicy) -> None:
    long_phrase = "the quiet lighthouse keeper painted seventeen violet boats at dawn"
    assert len(long_phrase) >= 64
    assert policy.evaluate(long_phrase).ok
    assert policy.evaluate(secrets.token_urlsafe(96)[:128]).ok


def test_too_long_and_byte_cap(policy: PasswordPolicy) -> None:
    assert _reasons(policy, secrets.token_urlsafe(120)[:129]) == {R.TOO_LONG}
    assert _reasons(policy, "\ufdfa" * 10) == {R.TOO_LONG}  # 10 characters, 180 after NFKC
    assert _reasons(policy, "x" * 5000) == {R.TOO_LONG}
    wide = PasswordPolicy(PasswordSettings(max_length=256))
    assert _reasons(wide, "🦄" * 256) == {R.TOO_WEAK}  # 1,024 bytes: exactly at the byte cap
    assert _reasons(wide, "🦄" * 257) == {R.TOO_LONG}


def test_common_passwords_case_insensitive_and_padded(policy: PasswordPolicy) -> None:
    for password in [
        "password123!",
        "Password123!",
        "PASSWORD2024!!",
        "!!dragon2024!!",
        "123456football",
        "".join(chr(ord(c) + 0xFEE0) for c in "password12345"),  # full-width: NFKC first
        "  sunshine1234  ",
    ]:
        assert R.COMMON in _reasons(policy, password), password


def test_user_information_is_refused(policy: PasswordPolicy) -> None:
    user = UserInfo(email="alice.smith@examplecorp.io", names=("Bob Marley-Jones",))
    for password in [
        "my alice is blue forever",
        "SMITH-and-some-other-words",
        "examplecorp rocks forever and ever",
        "Marley fan since nineteen",
        "joneses are jones too",
    ]:
        assert R.SIMILAR_TO_USER_INFO in _reasons(policy, password, user), password
    # Parts under four characters are ignored: "io", "Bob" would catch innocent passwords.
    assert policy.evaluate("a biography of io and bob", user).ok


def test_user_words(policy: PasswordPolicy) -> None:
    user = UserInfo(email="Mary.O'Neil+x@mail.example.co.uk", names=("Zoë Ünal",), username="zu")
    assert set(user.words()) == {
        "mary.o'neil+x",
        "mary",
        "neil",
        "mail",
        "example",
        "zoë ünal",
        "zoëünal",
        "ünal",
    }


def test_weak_but_uncommon_passwords_fail_the_score(policy: PasswordPolicy) -> None:
    for password in ["abcdefghijkl", "aaaaaaaaaaaa", "qwertyuiopas", "12345678901234"]:
        decision = policy.evaluate(password)
        assert isinstance(decision, Rejected)
        assert decision.reasons == (R.TOO_WEAK,)
        assert len(decision.messages) == 2  # ours, then zxcvbn's specific warning


def test_user_inputs_reach_zxcvbn() -> None:
    policy = PasswordPolicy(PasswordSettings())
    # Reversed, so not a substring of the user's names; zxcvbn, told the user's words, sees it.
    user = UserInfo(names=("Quorvath Zelminor",))
    assert policy.evaluate("htavrouqronimlez") == Accepted(score=4)
    assert _reasons(policy, "htavrouqronimlez", user) == {R.TOO_WEAK}


def test_composition_rules_are_off_by_default_and_available(policy: PasswordPolicy) -> None:
    phrase = "correct horse battery staple"
    assert policy.evaluate(phrase).ok
    strict = PasswordPolicy(PasswordSettings(min_character_classes=3))
    assert _reasons(strict, phrase) == {R.MISSING_CHARACTER_CLASSES}
    assert strict.evaluate("Correct horse battery staple 9").ok


def test_several_reasons_and_the_message(policy: PasswordPolicy) -> None:
    decision = policy.evaluate("password1", UserInfo(email="password@example.com"))
    assert isinstance(decision, Rejected)
    assert decision.reasons == (R.TOO_SHORT, R.COMMON, R.SIMILAR_TO_USER_INFO)
    assert decision.message.startswith("Use at least 12 characters. ")
    assert not decision.ok
    custom = PasswordPolicy(PasswordSettings(min_length=16))
    assert "16 characters" in custom.reject(R.TOO_SHORT).message
    assert "128 characters" in custom.reject(R.TOO_LONG).message


@pytest.mark.timing
def test_scoring_time_is_bounded(policy: PasswordPolicy) -> None:
    # zxcvbn is super-linear: 128 random characters take seconds unless the input is capped.
    password = "".join(secrets.choice("!#$%&()*+,-./:;<=>?@[]^_{|}~aZ9") for _ in range(128))
    load_zxcvbn()  # the one-time dictionary load (~0.1 s) is not the scoring being bounded
    start = time.perf_counter()
    policy.evaluate(password)
    assert time.perf_counter() - start < 1.0


def test_concurrent_decisions_do_not_score_against_each_others_user_inputs(
    policy: PasswordPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zxcvbn puts each call's user inputs in a module-level dictionary that its matching reads
    afterwards. Decision A is held inside zxcvbn's matching while decision B (another user) is
    started in a second thread: A must still see its own user's inputs when it goes on."""
    import threading  # noqa: PLC0415

    matching = load_zxcvbn().matching
    real_omnimatch = matching.omnimatch
    inside = threading.Event()
    go_on = threading.Event()
    seen: dict[str, object] = {}

    def held_omnimatch(password: str, dictionaries: dict[str, object]) -> object:
        if password.startswith("first"):
            inside.set()
            go_on.wait(5)
            seen["first"] = set(dictionaries["user_inputs"])  # type: ignore[call-overload]
        return real_omnimatch(password, dictionaries)

    monkeypatch.setattr(matching, "omnimatch", held_omnimatch)
    first_user = UserInfo(names=("Quorvath Zelminor",))
    first = threading.Thread(target=policy.evaluate, args=("first-Vq8#zR2!wLp9", first_user))
    second = threading.Thread(
        target=policy.evaluate,
        args=("second-Vq8#zR2!wLp9", UserInfo(names=("Bramble Oakheart",))),
    )
    first.start()
    assert inside.wait(5)
    second.start()
    second.join(0.5)  # without the lock, B replaces the inputs well within this
    go_on.set()
    first.join(5)
    second.join(5)
    assert seen["first"] == set(first_user.words())
    assert "bramble" not in seen["first"]
