"""Passkeys in a real browser: headless Chromium (Debian's, through Playwright's Python package)
with the DevTools virtual authenticator, against a real ``bastion serve`` on ``localhost``.

The page Bastion serves (``/passkeys``) signs in with a password, registers a passkey, and signs
in with it; the server's sign count and credential id are compared with the authenticator's.
Then the attacks a browser can stage: a replayed assertion, an assertion whose clientDataJSON
claims another origin, one whose bytes changed after signing, a registration from another
origin, and inline script injected into the page.

Skipped with the reason shown when ``/usr/bin/chromium`` is missing, unless ``CI=true``
(``.ci/run`` installs it). Pitfalls: ../shared/notes/webauthn-browser-tests.md.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import pytest
from tests.common.server import LiveServer, start_server, stop_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # as root the sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: The whole test must end well within this (Chromium alone answers in seconds).
OUTER_TIMEOUT_SECONDS = 120
PASSWORD = "Vivid-otter quarry lantern 42"
EMAIL = "passkey-user@example.com"
_TOKEN_LINE = re.compile(r"^Token: (\S+)\s*$", re.MULTILINE)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is not installed (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires it")
    pytest.skip(reason)


@pytest.fixture
def deadline() -> Iterator[None]:
    """An outer timeout: a hung browser call fails the test instead of hanging the run."""

    def expired(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"browser test still running after {OUTER_TIMEOUT_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(OUTER_TIMEOUT_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    # RP id and allowed origin come from the defaults without a public URL: "localhost" and
    # http://localhost:<port>, the one origin a browser treats as secure over plain HTTP.
    live = start_server(tmp_path / "data", BASTION_MAILER="file")
    yield live
    stop_server(live)


def _port(server: LiveServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _verify_token(data_dir: Path, within: float = 10.0) -> str:
    end = time.monotonic() + within
    while time.monotonic() < end:
        for path in sorted((data_dir / "mail").glob("*.json")):
            try:
                mail = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                continue  # still being written
            match = _TOKEN_LINE.search(str(mail.get("text", "")))
            if mail.get("kind") == "verify_email" and match:
                return match.group(1)
        time.sleep(0.1)
    raise AssertionError("no verify_email mail")


def _create_account(server: LiveServer, data_dir: Path) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        body = {"email": EMAIL, "password": PASSWORD, "display_name": "Pat Passkey"}
        assert client.post("/v1/accounts", json=body).status_code == 202
        verified = client.post("/v1/accounts/verify-email", json={"token": _verify_token(data_dir)})
        assert verified.status_code == 200, verified.text


def _server_credentials(data_dir: Path) -> list[tuple[bytes, int]]:
    with sqlite3.connect(data_dir / "bastion.db") as db:
        rows = db.execute("SELECT credential_id, sign_count FROM webauthn_credentials").fetchall()
    return [(bytes(cid), int(count)) for cid, count in rows]


def _authenticator_credentials(cdp: Any, authenticator_id: str) -> list[dict[str, Any]]:
    found = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
    return list(found["credentials"])


def _click(page: Any, button: str) -> dict[str, Any]:
    """Click a button of the page and wait for its outcome; the shown JSON."""
    page.click(f"#{button}")
    page.wait_for_selector("#status:not([data-state='busy'])")
    state = page.get_attribute("#status", "data-state")
    output = page.text_content("#output") or "null"
    assert state == "ok", f"{page.text_content('#status')}: {output}"
    return dict(json.loads(output))


# Page-side scripts for the attacks: they use the page's own helpers (window.bastionPasskeys).
_FINISH_AGAIN = """async () => {
  const last = bastionPasskeys.lastFinish();
  return await bastionPasskeys.api("POST", last.path, last.body);
}"""
_LOGIN_WITH_CHANGED_CLIENT_DATA = """async (change) => {
  const P = bastionPasskeys;
  const begun = (await P.api("POST", "/v1/sessions/webauthn/begin")).data;
  const credential = await P.get(begun.publicKey);
  const text = new TextDecoder().decode(P.b64urlToBuf(credential.response.clientDataJSON));
  let changed;
  if (change === "origin") {
    const data = JSON.parse(text);
    data.origin = "https://bastion.example.evil";
    changed = JSON.stringify(data);
  } else {
    changed = text.replace(/}$/, ',"extra":"bytes changed after signing"}');
  }
  credential.response.clientDataJSON = P.bufToB64url(new TextEncoder().encode(changed));
  return await P.api("POST", "/v1/sessions/webauthn/finish",
    { ceremony: begun.ceremony, credential, transport: "bearer" });
}"""
_REGISTER_FROM_ANOTHER_ORIGIN = """async () => {
  const P = bastionPasskeys;
  const begun = (await P.api("POST", "/v1/account/mfa/webauthn/registrations")).data;
  begun.publicKey.excludeCredentials = [];  // let the same authenticator answer again
  // The browser's JSON helpers this time (toJSON() adds publicKey, authenticatorData...).
  const created = await navigator.credentials.create({
    publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(begun.publicKey),
    signal: AbortSignal.timeout(10000),
  });
  const credential = created.toJSON();
  const text = new TextDecoder().decode(P.b64urlToBuf(credential.response.clientDataJSON));
  const data = JSON.parse(text);
  data.origin = "https://bastion.example.evil";
  credential.response.clientDataJSON = P.bufToB64url(
    new TextEncoder().encode(JSON.stringify(data)));
  return await P.api("POST", "/v1/account/mfa/webauthn/registrations/finish",
    { ceremony: begun.ceremony, credential, name: "phished" });
}"""
_LOGIN_WITH_BROWSER_JSON = """async () => {
  // The browser's own JSON helpers, as docs/api.md offers: no hand-written base64url.
  const P = bastionPasskeys;
  const begun = (await P.api("POST", "/v1/sessions/webauthn/begin")).data;
  const credential = await navigator.credentials.get({
    publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(begun.publicKey),
    signal: AbortSignal.timeout(10000),
  });
  return await P.api("POST", "/v1/sessions/webauthn/finish",
    { ceremony: begun.ceremony, credential: credential.toJSON(), transport: "bearer" });
}"""
_INJECT_INLINE_SCRIPT = """() => {
  const script = document.createElement("script");
  try { script.textContent = "window.injected = true;"; } catch (e) { return "blocked: " + e.name; }
  document.body.append(script);
  return window.injected === true ? "ran" : "blocked by CSP";
}"""


def test_register_a_passkey_and_log_in_with_it(
    deadline: None, server: LiveServer, tmp_path: Path
) -> None:
    _require_chromium()
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only when Chromium exists

    data_dir = tmp_path / "data"
    _create_account(server, data_dir)
    origin = f"http://localhost:{_port(server)}"
    console_errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.on(
                "console",
                lambda message: (
                    console_errors.append(message.text) if message.type == "error" else None
                ),
            )
            page.goto(f"{origin}/passkeys")
            page.wait_for_function("() => window.bastionPasskeys !== undefined")
            cdp = context.new_cdp_session(page)
            cdp.send("WebAuthn.enable")
            authenticator_id = cdp.send(
                "WebAuthn.addVirtualAuthenticator",
                {
                    "options": {
                        "protocol": "ctap2",
                        "transport": "internal",
                        "hasResidentKey": True,
                        "hasUserVerification": True,
                        "isUserVerified": True,
                    }
                },
            )["authenticatorId"]
            _scenario(page, cdp, authenticator_id, data_dir)
        finally:
            browser.close()
    # The page's own script ran under its CSP without a single violation.
    assert not [e for e in console_errors if "Content Security Policy" in e], console_errors


def _scenario(page: Any, cdp: Any, authenticator_id: str, data_dir: Path) -> None:
    # 1. Password sign-in, then register a passkey through the page's buttons.
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    assert _click(page, "password-login")["token_type"] == "Bearer"
    page.fill("#passkey-name", "Virtual authenticator")
    registered = _click(page, "register")
    assert (registered["name"], registered["kind"]) == ("Virtual authenticator", "hwk")
    [held] = _authenticator_credentials(cdp, authenticator_id)
    assert held["isResidentCredential"] is True
    assert held["rpId"] == "localhost"
    [(stored_id, stored_count)] = _server_credentials(data_dir)
    # The authenticator reports ids in standard base64, the server stored the raw bytes.
    assert base64.b64decode(held["credentialId"]) == stored_id
    assert stored_count == held["signCount"]

    # 2. Sign out, sign in with the passkey alone.
    _click(page, "logout")
    signed_in = _click(page, "passkey-login")
    assert signed_in["session"]["amr"] == ["hwk", "mfa"]
    [held] = _authenticator_credentials(cdp, authenticator_id)
    [(_, stored_count)] = _server_credentials(data_dir)
    assert held["signCount"] > 0
    assert stored_count == held["signCount"]

    # 3. Attacks.
    replayed = page.evaluate(_FINISH_AGAIN)
    assert (replayed["status"], replayed["data"]["code"]) == (400, "webauthn_ceremony_invalid")
    for change in ("origin", "bytes"):
        refused = page.evaluate(_LOGIN_WITH_CHANGED_CLIENT_DATA, change)
        assert (refused["status"], refused["data"]["code"]) == (
            401,
            "webauthn_assertion_rejected",
        ), (change, refused)
    assert _server_credentials(data_dir)[0][1] == stored_count  # nothing moved
    assert page.evaluate(_INJECT_INLINE_SCRIPT) != "ran"

    # 4. The genuine passkey still works after the failed attempts (its counter went on).
    _click(page, "logout")
    assert _click(page, "passkey-login")["session"]["amr"] == ["hwk", "mfa"]
    [held] = _authenticator_credentials(cdp, authenticator_id)
    assert _server_credentials(data_dir)[0][1] == held["signCount"] > stored_count

    # The same login with the browser's parseRequestOptionsFromJSON() and toJSON().
    native = page.evaluate(_LOGIN_WITH_BROWSER_JSON)
    assert native["status"] == 200, native
    [held] = _authenticator_credentials(cdp, authenticator_id)
    assert _server_credentials(data_dir)[0][1] == held["signCount"]

    # 5. Last (it replaces the authenticator's resident credential): a registration whose
    # client data names another origin is refused and stores nothing.
    phished = page.evaluate(_REGISTER_FROM_ANOTHER_ORIGIN)
    assert (phished["status"], phished["data"]["code"]) == (400, "webauthn_registration_rejected")
    assert len(_server_credentials(data_dir)) == 1
