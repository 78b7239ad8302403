"""The monitoring pipeline in the real app: failed logins through the API become a signed
webhook alert citing the audit chain's sequence numbers, the derived metrics appear on
/metrics, and an undeliverable alert is listed for administrators."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select
from tests.common.http_receiver import Receiver, http_receiver
from tests.functional.identity_helpers import (
    client_for,
    client_ip,
    create_account,
    identity_settings,
    login,
    login_response,
    mails_to,
    running_app,
    setup_admin,
    wait_for_mail,
)

from bastion.audit.models import audit_events
from bastion.config import Settings
from bastion.monitoring.settings import BruteForceSettings, MonitoringSettings, WebhookSettings
from bastion.outbound import OutboundSettings
from bastion.sdk import verify_webhook

SECRET = "whsec-" + "z" * 40
VICTIM = "victim@example.com"


def _settings(tmp_path: Path, receiver: Receiver, **monitoring: Any) -> Settings:
    return identity_settings(
        tmp_path,
        outbound=OutboundSettings(
            allow_http=True, allowed_ports=[receiver.port], allow_loopback_for_tests=True
        ),
        monitoring=MonitoringSettings(
            brute_force=BruteForceSettings(threshold=4),
            webhooks=[WebhookSettings(name="soc", url=receiver.url(), secret=SECRET)],
            **monitoring,
        ),
    )


async def _settle(app: FastAPI) -> None:
    """Wait for the trail, the detectors and the deliveries (no sleeping on a timer)."""
    services = app.state.services
    for _ in range(3):
        await asyncio.wait_for(services.audit._queue.join(), timeout=10)
        await asyncio.wait_for(services.monitoring.engine.drain(), timeout=10)
        await asyncio.wait_for(services.monitoring.dispatcher.drain(), timeout=10)


async def _failure_seqs(app: FastAPI) -> list[int]:
    e = audit_events.c
    async with app.state.services.database.engine.connect() as connection:
        rows = await connection.execute(
            select(e.seq).where(e.type == "identity:login:failed").order_by(e.seq)
        )
        return [row.seq for row in rows]


async def test_guessing_one_account_raises_a_signed_alert_and_metrics(tmp_path: Path) -> None:
    async with http_receiver([200]) as receiver:
        settings = _settings(tmp_path, receiver)
        async with running_app(settings) as app:
            for n in range(4):  # four IPs: under every per-IP limit
                async with client_for(app, client_ip(n)) as client:
                    response = await login_response(client, VICTIM, "guess-" + str(n) * 12)
                    assert response.status_code == 401
            await _settle(app)
            seqs = await _failure_seqs(app)
            async with client_for(app, "127.0.0.1") as local:
                metrics = (await local.get("/metrics")).text
    [delivery] = receiver.requests
    alert_id = verify_webhook(SECRET, delivery.headers, delivery.body)
    alert = json.loads(delivery.body)
    assert alert["id"] == alert_id
    assert alert["detector"] == "brute_force"
    assert alert["type"] == "alert:brute_force:detected"
    assert alert["evidence"] == seqs  # the chain's own sequence numbers
    assert 'bastion_login_failures_total{reason="unknown_account"} 4.0' in metrics
    assert 'bastion_alerts_total{detector="brute_force",severity="high"} 1.0' in metrics
    assert 'bastion_alert_deliveries_total{channel="webhook",outcome="delivered"} 1.0' in metrics
    assert "bastion_audit_queue_depth" in metrics


async def test_an_undeliverable_alert_is_listed_for_administrators_only(tmp_path: Path) -> None:
    async with http_receiver([503]) as receiver:
        settings = _settings(tmp_path, receiver, webhook_max_attempts=1)
        async with running_app(settings) as app:
            async with client_for(app) as client:
                admin = await setup_admin(app, client)
                session = await login(client, admin)
            for n in range(4):
                async with client_for(app, client_ip(n)) as client:
                    await login_response(client, VICTIM, "guess-" + str(n) * 12)
            await _settle(app)
            async with client_for(app) as client:
                listed = await client.get("/v1/admin/alerts/dead-letters", headers=session.headers)
                anonymous = await client.get("/v1/admin/alerts/dead-letters")
    assert listed.status_code == 200, listed.text
    [letter] = listed.json()["dead_letters"]
    assert letter["destination"] == "soc"
    assert letter["last_error"] == "http_503"
    assert letter["alert"]["detector"] == "brute_force"
    assert anonymous.status_code == 401
    assert len(receiver.requests) == 1


async def test_alert_mails_reach_operators_and_new_sign_ins_reach_the_user(tmp_path: Path) -> None:
    async with http_receiver([200]) as receiver:
        settings = _settings(tmp_path, receiver, alert_emails=["soc@example.com"])
        async with running_app(settings) as app:
            async with client_for(app, "192.0.2.10") as home:
                account = await create_account(home, settings)
                home.headers["User-Agent"] = "Firefox/125"
                await login(home, account)  # first login: learned, no notice
                await login(home, account)  # same browser, same network: nothing new
            async with client_for(app, "203.0.113.200") as elsewhere:
                elsewhere.headers["User-Agent"] = "curl/8.6"
                await login(elsewhere, account)
            for n in range(4):
                async with client_for(app, client_ip(n)) as client:
                    await login_response(client, VICTIM, "guess-" + str(n) * 12)
            await _settle(app)
            notice = await wait_for_mail(settings, account.email, "new_sign_in")
            soc = await wait_for_mail(settings, "soc@example.com", "security_alert")
            assert len(mails_to(settings, account.email, "new_sign_in")) == 1
    assert "203.0.113.200" in notice["text"]
    assert "curl/8.6" in notice["text"]
    assert "brute_force" in soc["subject"]
    # The low-severity new-device alert went to the webhook only (min_severity low), not to
    # the operators' mailbox (email_min_severity high).
    assert {json.loads(r.body)["detector"] for r in receiver.requests} == {
        "brute_force",
        "new_device_login",
    }
