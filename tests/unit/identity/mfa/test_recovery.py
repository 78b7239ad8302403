"""Recovery codes: shape, entropy, normalisation and digests."""

from __future__ import annotations

import re

from bastion.identity.mfa import recovery

SHAPE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){3}$")


def test_ten_distinct_codes_of_100_bits() -> None:
    codes = recovery.new_codes()
    assert len(codes) == recovery.CODE_COUNT == 10
    assert len(set(codes)) == 10
    assert all(SHAPE.match(code) for code in codes)
    # 20 symbols of a 32-letter alphabet: 100 bits each.
    assert all(len(code.replace("-", "")) * 5 == 100 for code in codes)


def test_typing_variants_normalise_to_one_digest() -> None:
    code = recovery.new_codes(1)[0]
    canonical = recovery.normalize_code(code)
    assert canonical is not None
    for typed in (code.lower(), code.replace("-", " "), code.replace("-", ""), f" {code} "):
        assert recovery.normalize_code(typed) == canonical
    assert recovery.hash_code(canonical) == recovery.hash_code(
        recovery.normalize_code(code.lower()) or ""
    )


def test_confusable_letters_read_as_digits() -> None:
    assert recovery.normalize_code("O" * 20) == "0" * 20
    assert recovery.normalize_code("IL" * 10) == "1" * 20


def test_garbage_is_refused() -> None:
    for typed in ("", "short", "U" * 20, "A" * 21, "A" * 10_000, "ÄÄÄÄÄ-ÄÄÄÄÄ-ÄÄÄÄÄ-ÄÄÄÄÄ"):
        assert recovery.normalize_code(typed) is None


def test_digest_is_not_the_code() -> None:
    canonical = recovery.normalize_code(recovery.new_codes(1)[0]) or ""
    digest = recovery.hash_code(canonical)
    assert len(digest) == 64
    assert canonical not in digest
