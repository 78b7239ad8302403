"""The event catalog cannot drift: every EventType member has a description, and
docs/audit-events.md is exactly what ``bastion audit catalog`` renders from the enum."""

from __future__ import annotations

from pathlib import Path

from bastion.audit.catalog import SECTIONS, render_catalog, section_of
from bastion.audit.events import DESCRIPTIONS, EventType

CATALOG = Path(__file__).resolve().parents[3] / "docs" / "audit-events.md"
#: The categories issue 7 requires the catalog to cover.
REQUIRED_SECTIONS = {
    "Logins and lockouts",
    "Multi-factor authentication",
    "Tokens",
    "Passwords and email",
    "Accounts and sessions",
    "Administrator actions",
    "Authorization decisions",
    "Rejected input",
    "Rate limits and abuse protection",
    "Key rotations",
    "Configuration changes",
    "Data exports and erasures",
    "Alerts",
}


def test_every_event_type_has_a_description() -> None:
    missing = [member.name for member in EventType if not (member.description or "").strip()]
    assert not missing, (
        f"add a line to DESCRIPTIONS in src/bastion/audit/events.py for: {', '.join(missing)}"
    )
    assert set(DESCRIPTIONS) == set(EventType)


def test_the_catalog_file_is_up_to_date() -> None:
    assert CATALOG.read_text(encoding="utf-8") == render_catalog(), (
        "docs/audit-events.md is stale: run `bastion audit catalog`"
    )


def test_the_catalog_lists_every_event_once_under_the_required_sections() -> None:
    text = render_catalog()
    for member in EventType:
        assert text.count(f"| `{member.value}` |") == 1, member
    titles = {section.title for section in SECTIONS}
    assert titles >= REQUIRED_SECTIONS
    for title in REQUIRED_SECTIONS:
        assert f"## {title}\n" in text


def test_sections_claim_the_events_they_describe() -> None:
    assert section_of(EventType.IDENTITY_LOGIN_FAILED).title == "Logins and lockouts"
    assert section_of(EventType.TOKEN_REFRESH_REUSE_DETECTED).title == "Tokens"
    assert section_of(EventType.IDENTITY_ACCOUNT_DISABLED).title == "Administrator actions"
    assert section_of(EventType.TOKEN_SIGNING_KEY_ROTATED).title == "Key rotations"
    assert section_of(EventType.HTTP_REQUEST_REJECTED).title == "Rejected input"
