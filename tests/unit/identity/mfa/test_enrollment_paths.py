"""The enrollment policy's path lookup, made once, decides exactly as the walk over
ENROLLMENT_PATHS it replaces: every entry, unknown paths and path tricks."""

from __future__ import annotations

import itertools
import random

import pytest

from bastion.identity.mfa.stepup import (
    ENROLLMENT_PATHS,
    STEP_UP_ENDPOINT,
    _enrollment_allowed,
    _enrollment_lookup,
)


def walk(paths: tuple[tuple[str, str], ...], method: str, path: str) -> bool:
    """The walk over the table (the decision before the lookup was made once)."""
    for allowed_method, allowed in paths:
        if allowed_method not in ("*", method):
            continue
        if path == allowed or (allowed.endswith("/") and path.startswith(allowed)):
            return True
    return False


METHODS = ["GET", "POST", "DELETE", "PATCH", "PUT", "HEAD", "OPTIONS", "get", "*", ""]


def variants(path: str) -> list[str]:
    """The path and its tricks: trailing slash, case, encoded characters, dot segments,
    doubled slashes, a query-like suffix, a prefix that is not a segment."""
    trimmed = path.rstrip("/")
    return [
        path,
        trimmed,
        trimmed + "/",
        trimmed + "//",
        path.upper(),
        path.title(),
        path.replace("/", "%2F"),
        path.replace("/", "%2f", 1),
        path.replace("a", "%61"),
        trimmed + "/..",
        trimmed + "/../admin",
        trimmed + "/./",
        "/v1/../" + trimmed.removeprefix("/v1/"),
        trimmed + "s",
        trimmed + "x/totp",
        trimmed + "/totp",
        trimmed + "/webauthn/abc",
        trimmed + "?x=1",
        trimmed + "\x00",
        trimmed + " ",
        " " + path,
        "//" + path.lstrip("/"),
        trimmed[:-1],
    ]


PATHS = sorted(
    {variant for _, path in ENROLLMENT_PATHS for variant in variants(path)}
    | {
        "",
        "/",
        "/v1",
        "/v1/",
        "/v1/account/password",
        "/v1/account/export",
        "/v1/admin/users",
        "/v1/sessions",
        "/v1/sessions/refresh",
        "/v1/sessions/current/step-up/x",
        STEP_UP_ENDPOINT.upper(),
        "/v1/accounts/mfa",
        "/v1/account/mfa\u0131",
        "/ｖ1/account",  # noqa: RUF001 - a fullwidth letter on purpose
    }
)


def test_every_entry_is_allowed_for_its_method() -> None:
    for method, path in ENROLLMENT_PATHS:
        for asked in METHODS if method == "*" else [method]:
            assert _enrollment_allowed(asked, path)


@pytest.mark.parametrize("path", PATHS)
def test_decides_as_the_walk(path: str) -> None:
    for method in METHODS:
        assert _enrollment_allowed(method, path) is walk(ENROLLMENT_PATHS, method, path), (
            method,
            path,
        )


def test_known_answers() -> None:
    assert _enrollment_allowed("GET", "/v1/account")
    assert not _enrollment_allowed("GET", "/v1/account/")
    assert not _enrollment_allowed("PATCH", "/v1/account")
    assert _enrollment_allowed("POST", "/v1/account/mfa/totp")
    assert _enrollment_allowed("DELETE", "/v1/account/mfa/../../admin")  # as the walk: raw path
    assert not _enrollment_allowed("GET", "/v1/account/MFA/totp")
    assert not _enrollment_allowed("GET", "/v1/account/mfa%2Ftotp")
    assert not _enrollment_allowed("GET", STEP_UP_ENDPOINT)
    assert _enrollment_allowed("POST", STEP_UP_ENDPOINT)
    assert not _enrollment_allowed("POST", STEP_UP_ENDPOINT + "/")


def test_other_tables_decide_as_the_walk() -> None:
    # Method-specific prefixes, "*" prefixes, overlapping and empty entries: tables the
    # lookup does not meet today, so that a new entry keeps the walk's meaning.
    rng = random.Random(20261129)  # noqa: S311 - test data, not security
    pieces = ["/a", "/a/", "/a/b", "/a/b/", "/b/", "/", "", "/A/"]
    methods = ["*", "GET", "POST"]
    asked = ["/a", "/a/", "/a/b", "/a/bc", "/a/b/c", "/b", "/b/x", "/", "", "/A/x", "/c"]
    for size in range(5):
        for _ in range(40):
            table = tuple((rng.choice(methods), rng.choice(pieces)) for _ in range(size))
            lookup = _enrollment_lookup(table)
            for method, path in itertools.product(["GET", "POST", "PUT", "*"], asked):
                assert lookup(method, path) is walk(table, method, path), (table, method, path)
