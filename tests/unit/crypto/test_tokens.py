"""Opaque tokens: 256 bits, typed prefixes, storage hash, constant-time comparison."""

from __future__ import annotations

import base64
import hashlib

import pytest

from bastion.crypto import (
    TOKEN_BYTES,
    TokenKind,
    constant_time_equals,
    hash_token,
    is_well_formed,
    new_token,
)


def test_tokens_carry_256_bits_and_their_kind() -> None:
    assert TOKEN_BYTES * 8 >= 256
    for kind in TokenKind:
        token = new_token(kind)
        prefix, secret = token[: len(kind.value)], token[len(kind.value) + 1 :]
        assert prefix == kind.value
        assert token[len(kind.value)] == "_"
        assert len(base64.urlsafe_b64decode(secret + "=")) == TOKEN_BYTES
        assert is_well_formed(token, kind)


def test_prefixes_are_distinct_and_never_prefixes_of_each_other() -> None:
    prefixes = [f"{kind.value}_" for kind in TokenKind]
    for a in prefixes:
        assert sum(b.startswith(a) for b in prefixes) == 1


def test_tokens_are_unique() -> None:
    assert len({new_token(TokenKind.SESSION) for _ in range(10_000)}) == 10_000


def test_a_token_of_one_kind_is_not_well_formed_as_another() -> None:
    token = new_token(TokenKind.PASSWORD_RESET)
    assert not is_well_formed(token, TokenKind.SESSION)
    assert not is_well_formed(token[:-1], TokenKind.PASSWORD_RESET)
    assert not is_well_formed(token + "A", TokenKind.PASSWORD_RESET)
    assert not is_well_formed(token[:-1] + "=", TokenKind.PASSWORD_RESET)
    assert not is_well_formed(token.encode(), TokenKind.PASSWORD_RESET)  # type: ignore[arg-type]


def test_a_kind_named_by_its_value_is_that_kind() -> None:
    token = new_token("bst_ref")  # type: ignore[arg-type]
    assert token.startswith("bst_ref_")
    assert is_well_formed(token, TokenKind.REFRESH)
    assert is_well_formed(token, "bst_ref")  # type: ignore[arg-type]
    assert not is_well_formed(token, "bst_ses")  # type: ignore[arg-type]
    assert not is_well_formed(token + "\n", TokenKind.REFRESH)
    assert not is_well_formed("x" + token, TokenKind.REFRESH)
    with pytest.raises(ValueError, match="bst_nope"):
        new_token("bst_nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bst_nope"):
        is_well_formed(token, "bst_nope")  # type: ignore[arg-type]


def test_hash_token_is_sha256_hex_of_the_whole_token() -> None:
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    token = new_token(TokenKind.API_KEY)
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert len(hash_token(token)) == 64


def test_constant_time_equals() -> None:
    assert constant_time_equals("abc", "abc")
    assert constant_time_equals(b"abc", "abc")
    assert not constant_time_equals("abc", "abd")
    assert not constant_time_equals("abc", "abcd")
    assert constant_time_equals("pässwörd🔑", "pässwörd🔑")  # non-ASCII str is fine
    assert not constant_time_equals("pässwörd", "passwörd")
