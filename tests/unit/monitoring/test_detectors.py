"""Each detector fed a realistic attack (one alert, with evidence) and a benign sequence of the
same shape (no alert)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from tests.unit.monitoring.helpers import EventStream, login_failed, login_ok

from bastion.audit.events import EventType, Outcome
from bastion.audit.interfaces import StoredEvent
from bastion.monitoring.alerts import Alert, Detector, Severity
from bastion.monitoring.counters import MemoryCounters
from bastion.monitoring.detectors import (
    AdminOffHoursDetector,
    BruteForceDetector,
    CredentialStuffingDetector,
    DenialBurstDetector,
    NewDeviceDetector,
    PasswordSprayingDetector,
    RefreshReuseDetector,
)
from bastion.monitoring.interfaces import EventDetector
from bastion.monitoring.settings import (
    AdminHoursSettings,
    BruteForceSettings,
    DenialBurstSettings,
    NewDeviceSettings,
    SprayingSettings,
    StuffingSettings,
)

KEY = b"k" * 32


async def feed(detector: EventDetector, events: Sequence[StoredEvent]) -> list[Alert]:
    alerts: list[Alert] = []
    for stored in events:
        alerts.extend(await detector.observe(stored))
    return alerts


# -- brute force ---------------------------------------------------------------------------------
async def test_brute_force_on_one_account_from_rotating_ips() -> None:
    s = EventStream()
    events = [login_failed(s, f"198.51.100.{i % 5}", "victim") for i in range(10)]
    alerts = await feed(BruteForceDetector(MemoryCounters(), BruteForceSettings()), events)
    assert alerts, "ten failures on one account must alert"
    first = alerts[0]
    assert first.detector is Detector.BRUTE_FORCE
    assert first.severity is Severity.HIGH
    assert first.evidence == tuple(e.seq for e in events)
    assert first.key == "password:victim"


async def test_brute_force_keeps_counting_while_the_backoff_throttles() -> None:
    s = EventStream()
    # The backoff locks the account after 5 failures; the attacker keeps hammering it.
    events = [login_failed(s, "198.51.100.7", "victim") for _ in range(5)] + [
        s(
            EventType.IDENTITY_LOGIN_THROTTLED,
            client_ip="198.51.100.7",
            reason="backoff",
            details={"email_ref": "victim"},
        )
        for _ in range(5)
    ]
    [alert] = await feed(BruteForceDetector(MemoryCounters(), BruteForceSettings()), events)
    assert alert.evidence == tuple(e.seq for e in events)


async def test_brute_force_on_a_second_factor() -> None:
    s = EventStream()
    codes = [
        s(EventType.IDENTITY_MFA_FAILED, subject="user:u1", actor="user:u1") for _ in range(10)
    ]
    [alert] = await feed(BruteForceDetector(MemoryCounters(), BruteForceSettings()), codes)
    assert alert.details["factor"] == "second_factor"


async def test_brute_force_benign_typos_spread_over_the_day() -> None:
    s = EventStream()
    # A user mistypes twice, logs in, and does the same every hour: never 10 in 15 minutes.
    events = []
    for _ in range(8):
        events += [
            login_failed(s, "192.0.2.10", "alice", after=timedelta(minutes=30)),
            login_failed(s, "192.0.2.10", "alice"),
            login_ok(s, "192.0.2.10", "alice"),
        ]
    assert await feed(BruteForceDetector(MemoryCounters(), BruteForceSettings()), events) == []


# -- credential stuffing -------------------------------------------------------------------------
async def test_stuffing_one_ip_replaying_a_leaked_list() -> None:
    s = EventStream()
    events = [
        login_failed(
            s, "203.0.113.66", f"acct{i}", reason="unknown_account" if i % 3 else "wrong_password"
        )
        for i in range(25)
    ]
    alerts = await feed(CredentialStuffingDetector(MemoryCounters(), StuffingSettings()), events)
    assert [a.details["signal"] for a in alerts][:1] == ["one_ip"]
    assert alerts[0].client_ip == "203.0.113.66"
    assert alerts[0].evidence == tuple(e.seq for e in events[:20])


async def test_stuffing_botnet_with_a_very_low_success_ratio() -> None:
    s = EventStream()
    settings = StuffingSettings(global_min_attempts=100, global_min_ips=20)
    events = []
    for i in range(120):
        events.append(
            login_failed(s, f"100.{i % 40}.7.{i % 200}", f"acct{i}", after=timedelta(seconds=2))
        )
        if i % 60 == 0:
            events.append(login_ok(s, "192.0.2.1", f"real{i}"))
    alerts = await feed(CredentialStuffingDetector(MemoryCounters(), settings), events)
    signals = {a.details["signal"] for a in alerts}
    assert signals == {"low_success_ratio"}
    assert alerts[0].details["successes"] == 2


async def test_stuffing_benign_busy_morning_with_many_typos() -> None:
    s = EventStream()
    settings = StuffingSettings(global_min_attempts=100, global_min_ips=20)
    events = []
    # 150 people log in from 30 networks, and every one of them mistypes once first: enough
    # failures and IPs for the global signal, but half the attempts succeed.
    for i in range(150):
        ip = f"192.0.2.{i % 30}"
        events.append(login_failed(s, ip, f"user{i}"))
        events.append(login_ok(s, ip, f"user{i}"))
    assert await feed(CredentialStuffingDetector(MemoryCounters(), settings), events) == []


# -- password spraying ---------------------------------------------------------------------------
async def test_spraying_one_network_one_password_many_existing_accounts() -> None:
    s = EventStream()
    # Slow and low: one attempt per account every 3 minutes, from two addresses of one /24.
    events = [
        login_failed(s, f"198.51.100.{10 + i % 2}", f"staff{i}", after=timedelta(minutes=3))
        for i in range(12)
    ]
    alerts = await feed(PasswordSprayingDetector(MemoryCounters(), SprayingSettings()), events)
    assert alerts
    assert alerts[0].detector is Detector.PASSWORD_SPRAYING
    assert alerts[0].details["network"] == "198.51.100.0/24"
    assert alerts[0].evidence == tuple(e.seq for e in events[:10])


async def test_spraying_benign_a_team_behind_one_nat_mistyping() -> None:
    s = EventStream()
    # Twelve colleagues behind one NAT each mistype a few times: many accounts, but many
    # attempts each (and unknown-account typos do not count).
    events = []
    for i in range(12):
        events += [login_failed(s, "198.51.100.1", f"staff{i}") for _ in range(3)]
        events.append(login_failed(s, "198.51.100.1", f"typo{i}", reason="unknown_account"))
    assert await feed(PasswordSprayingDetector(MemoryCounters(), SprayingSettings()), events) == []


# -- refresh-token reuse -------------------------------------------------------------------------
async def test_refresh_token_reuse_is_always_an_alert() -> None:
    s = EventStream()
    reuse = s(
        EventType.TOKEN_REFRESH_REUSE_DETECTED,
        subject="user:u1",
        client_ip="203.0.113.5",
        reason="refresh_reuse",
        details={"session_id": "sess-1"},
    )
    [alert] = await feed(RefreshReuseDetector(), [reuse])
    assert alert.severity is Severity.HIGH
    assert alert.evidence == (reuse.seq,)
    assert alert.details["session_id"] == "sess-1"


async def test_refresh_benign_rotations_and_rejections_do_not_alert() -> None:
    s = EventStream()
    events = [
        s(EventType.TOKEN_REFRESH_REJECTED, subject="user:u1", reason="expired"),
        s(EventType.IDENTITY_SESSION_REVOKED, subject="user:u1", actor="user:u1"),
    ]
    assert await feed(RefreshReuseDetector(), events) == []


# -- denial bursts -------------------------------------------------------------------------------
async def test_denial_burst_one_user_enumerating_forbidden_objects() -> None:
    s = EventStream()
    events = [
        s(
            EventType.AUTHZ_CHECK_DENIED,
            actor="user:mallory",
            details={"user": "user:mallory"},
            after=timedelta(seconds=1),
        )
        for _ in range(20)
    ] + [
        s(EventType.RATELIMIT_LIMIT_EXCEEDED, actor="user:mallory", client_ip="203.0.113.1")
        for _ in range(10)
    ]
    settings = DenialBurstSettings(window_seconds=60)
    alerts = await feed(DenialBurstDetector(MemoryCounters(), settings), events)
    assert len(alerts) == 1  # the 30th refusal within a minute
    assert alerts[0].actor == "user:mallory"
    assert len(alerts[0].evidence) == 30


async def test_denial_burst_ignores_a_service_querying_the_engine_about_others() -> None:
    s = EventStream()
    # The OpenFGA API answers "denied" about other users: not a refusal of the service itself.
    events = [
        s(
            EventType.AUTHZ_CHECK_DENIED,
            actor="user:svc",
            details={"user": f"user:u{i}"},
            after=timedelta(milliseconds=10),
        )
        for i in range(500)
    ]
    settings = DenialBurstSettings(window_seconds=60)
    assert await feed(DenialBurstDetector(MemoryCounters(), settings), events) == []


async def test_denial_burst_alerts_once_per_threshold_crossed() -> None:
    s = EventStream()
    settings = DenialBurstSettings(window_seconds=60)
    flood = [
        s(EventType.HTTP_CSRF_REJECTED, actor="user:m", after=timedelta(milliseconds=10))
        for _ in range(settings.threshold * 3 - 1)
    ]
    alerts = await feed(DenialBurstDetector(MemoryCounters(), settings), flood)
    assert [a.details["denials"] for a in alerts] == [settings.threshold, settings.threshold * 2]


async def test_denial_benign_occasional_403s_over_a_working_day() -> None:
    s = EventStream()
    events = [
        s(EventType.AUTHZ_CHECK_DENIED, actor="user:bob", after=timedelta(minutes=5))
        for _ in range(100)
    ]
    assert await feed(DenialBurstDetector(MemoryCounters(), DenialBurstSettings()), events) == []


# -- admin actions off hours ---------------------------------------------------------------------
OFFICE = AdminHoursSettings(enabled=True, start_hour=8, end_hour=19, timezone="Europe/Paris")


async def test_admin_disabling_accounts_at_3am_local_time() -> None:
    s = EventStream()  # Monday 10:00 UTC
    night = s(
        EventType.IDENTITY_ACCOUNT_DISABLED,
        after=timedelta(hours=15),  # Tuesday 01:00 UTC = 02:00 in Paris
        actor="user:admin1",
        subject="user:ceo",
        outcome=Outcome.SUCCESS,
    )
    [alert] = await feed(AdminOffHoursDetector(OFFICE), [night])
    assert alert.actor == "user:admin1"
    assert alert.details["action"] == "identity:account:disabled"
    assert alert.evidence == (night.seq,)


async def test_admin_benign_office_hours_and_users_acting_on_themselves() -> None:
    s = EventStream()
    events = [
        s(EventType.IDENTITY_ACCOUNT_DISABLED, actor="user:admin1", subject="user:x"),  # 11:00
        s(EventType.AUTHZ_MODEL_WRITTEN, actor="user:admin1", after=timedelta(hours=5)),
        # At night, but a user ending their own session is not an admin action.
        s(
            EventType.IDENTITY_SESSION_REVOKED,
            actor="user:u2",
            subject="user:u2",
            after=timedelta(hours=12),
        ),
        s(EventType.IDENTITY_LOGIN_FAILED, actor="user:admin1"),  # not an admin action
    ]
    assert await feed(AdminOffHoursDetector(OFFICE), events) == []


async def test_admin_weekend_is_off_hours() -> None:
    s = EventStream()
    sunday = s(
        EventType.AUTHZ_TUPLES_WRITTEN, actor="user:admin1", after=timedelta(days=6)
    )  # Sunday 10:00
    assert len(await feed(AdminOffHoursDetector(OFFICE), [sunday])) == 1


# -- new device or network -----------------------------------------------------------------------
async def test_new_device_login_after_a_history_of_the_usual_one() -> None:
    s = EventStream()
    usual = [
        login_ok(s, "192.0.2.20", "u1", agent="Firefox/125", after=timedelta(days=1))
        for _ in range(3)
    ]
    stolen = login_ok(s, "203.0.113.200", "u1", agent="curl/8.0")
    alerts = await feed(
        NewDeviceDetector(MemoryCounters(), NewDeviceSettings(), KEY), [*usual, stolen]
    )
    [alert] = alerts
    assert alert.details["new_device"]
    assert alert.details["new_network"]
    assert alert.details["user_id"] == "u1"
    assert alert.evidence == (stolen.seq,)
    assert alert.severity is Severity.LOW


async def test_new_device_benign_first_login_and_same_browser_from_the_same_network() -> None:
    s = EventStream()
    events = [
        login_ok(s, "192.0.2.20", "u1", agent="Firefox/125"),  # first ever: learned silently
        login_ok(s, "192.0.2.77", "u1", agent="Firefox/125"),  # same /24
        login_ok(s, "192.0.2.20", "u2", agent="Safari"),  # another account's first login
    ]
    assert await feed(NewDeviceDetector(MemoryCounters(), NewDeviceSettings(), KEY), events) == []


async def test_new_device_pseudonyms_hide_the_agent_and_network() -> None:
    store = MemoryCounters()
    s = EventStream()
    await feed(
        NewDeviceDetector(store, NewDeviceSettings(), KEY), [login_ok(s, "192.0.2.20", "u1")]
    )
    marks = " ".join(store._marks)
    assert "Firefox" not in marks
    assert "192.0.2" not in marks


@pytest.mark.parametrize("count", [0, 1])
async def test_detectors_ignore_unrelated_events(count: int) -> None:
    s = EventStream()
    events = [s(EventType.IDENTITY_PROFILE_UPDATED, actor="user:u1") for _ in range(count + 40)]
    for detector in (
        BruteForceDetector(MemoryCounters(), BruteForceSettings()),
        CredentialStuffingDetector(MemoryCounters(), StuffingSettings()),
        PasswordSprayingDetector(MemoryCounters(), SprayingSettings()),
        DenialBurstDetector(MemoryCounters(), DenialBurstSettings()),
    ):
        assert await feed(detector, events) == []


def test_new_device_pseudonyms_are_remembered_as_computed_and_bounded() -> None:
    """The memoised pseudonyms are the ones computed afresh, past the memo's bound too."""
    from bastion.monitoring.detectors._common import network_of  # noqa: PLC0415
    from bastion.monitoring.detectors.activity import MAX_REMEMBERED_PSEUDONYMS  # noqa: PLC0415

    detector = NewDeviceDetector(MemoryCounters(), NewDeviceSettings(), KEY)
    ips = [None, "", "unknown", "2001:db8::1", *(f"10.{i // 250}.{i % 250}.7" for i in range(1500))]
    agents = ["", "curl/8", *(f"agent {i}" for i in range(1500))]
    for _ in range(2):
        for ip in ips:
            assert detector._network(ip) == detector._pseudonym("network", network_of(ip) or "-")
        for agent in agents:
            assert detector._device(agent) == detector._pseudonym("device", agent)
    assert len(detector._networks) <= MAX_REMEMBERED_PSEUDONYMS
    assert len(detector._devices) <= MAX_REMEMBERED_PSEUDONYMS
