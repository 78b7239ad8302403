"""Email normal form and shape checks."""

from __future__ import annotations

import unicodedata

import pytest

from bastion.identity.emails import InvalidEmail, check_email, normalize_email


@pytest.mark.parametrize(
    "variant",
    ["Ann@Example.org", "ANN@EXAMPLE.ORG", " ann@example.org ", "\uff41\uff4e\uff4e@example.org"],
)
def test_spellings_of_one_address_share_a_normal_form(variant: str) -> None:
    assert normalize_email(variant) == "ann@example.org"


def test_case_folding_goes_beyond_lower() -> None:
    assert normalize_email("STRASSE@x.de") == normalize_email("straße@x.de")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "no-at-sign.example.com",
        "@example.org",
        "ann@",
        "ann@.example.org",
        "ann@example..org",
        "ann@example.org.",
        "a b@example.org",
        "ann@example.org\r\nBcc: victim@example.org",
        "ann\x00@example.org",
        "a@b@c.org",
        "x" * 65 + "@example.org",
        "ann@" + "d" * 254,
    ],
)
def test_what_is_not_an_address_is_refused(bad: str) -> None:
    with pytest.raises(InvalidEmail):
        check_email(bad)


@pytest.mark.parametrize("good", ["ann@example.org", "a+tag@sub.example.co.uk", "jörg@bücher.de"])
def test_addresses_pass(good: str) -> None:
    assert check_email(f" {good} ") == good


@pytest.mark.parametrize("code", range(128))
def test_ascii_characters_are_judged_as_by_their_unicode_category(code: int) -> None:
    """The ASCII shortcut refuses exactly the characters of categories C and Z, as the
    per-character test of other addresses does (the same address with a non-ASCII letter
    takes that path)."""
    ch = chr(code)
    refused = unicodedata.category(ch)[0] in "CZ"
    for address in (f"a{ch}b@example.org", f"a{ch}b\u00e9@example.org"):
        if refused:
            with pytest.raises(InvalidEmail, match="no spaces or control characters"):
                check_email(address)
        elif ch != "@":
            assert check_email(address) == address
