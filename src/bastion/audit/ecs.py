"""Map an :class:`AuditEvent` to Elastic Common Schema (ECS) fields.

Field names are ECS's dotted names (``event.action``, ``source.ip``), so a SIEM ingests the log
line without a custom mapping. ``event.category`` and ``event.type`` use ECS's allowed values,
derived from the event type's ``source`` and ``action``; Bastion-specific data goes under
``bastion.details``. Fields without a value are left out.

:func:`ecs_members` writes the same document as JSON text (the members, in :func:`to_ecs`'s
order, as :data:`bastion.logging.json_value` writes them) without building the dict: the audit
log line pays for one string join instead of a generic encoder walking a dict.

Subjects are typed references, ``kind:id``: ``user:<id>`` becomes ``user.target.id`` (the id),
any other subject the label ``labels.subject``. The actor is ``user.id`` as given.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from bastion.audit.events import AuditEvent, EventType
from bastion.logging import json_text, json_tree

ECS_VERSION = "8.11.0"
DATASET = "bastion.audit"
#: Every field :func:`to_ecs` may write, in its order.
FIELDS = (
    "@timestamp",
    "ecs.version",
    "event.kind",
    "event.dataset",
    "event.action",
    "event.category",
    "event.type",
    "event.outcome",
    "event.reason",
    "user.id",
    "user.target.id",
    "labels.subject",
    "source.ip",
    "user_agent.original",
    "http.request.id",
    "related.ip",
    "related.user",
    "bastion.details",
)

#: ECS ``event.category`` by event source (the first part of ``source:subject:action``).
CATEGORY_BY_SOURCE: dict[str, str] = {
    "auth": "authentication",
    "authn": "authentication",
    "session": "session",
    "identity": "iam",
    "authz": "iam",
    "admin": "iam",
    "http": "web",
    "protections": "web",
    "system": "configuration",
    "audit": "configuration",
    "token": "authentication",
    "mail": "email",
    "alert": "intrusion_detection",
    # Data subject rights act on an account's data: identity management.
    "privacy": "iam",
    "config": "configuration",
}

#: Setup tokens bootstrap the first administrator: identity management, not configuration.
CATEGORY_BY_TYPE: dict[EventType, str] = {
    EventType.SYSTEM_SETUP_TOKEN_ISSUED: "iam",
    EventType.SYSTEM_SETUP_TOKEN_CONSUMED: "iam",
    EventType.SYSTEM_SETUP_TOKEN_REJECTED: "iam",
    EventType.IDENTITY_LOGIN_SUCCEEDED: "authentication",
    EventType.IDENTITY_LOGIN_FAILED: "authentication",
    EventType.IDENTITY_LOGIN_THROTTLED: "authentication",
    EventType.IDENTITY_SESSION_REVOKED: "session",
    EventType.TOKEN_SIGNING_KEY_CREATED: "configuration",
    EventType.TOKEN_SIGNING_KEY_ROTATED: "configuration",
}

#: ECS ``event.type`` by action (the last part of the event type); "info" otherwise.
TYPE_BY_ACTION: dict[str, str] = {
    "rejected": "denied",
    "exceeded": "denied",
    "denied": "denied",
    "failed": "error",
    "overflowed": "error",
    "started": "start",
    "stopped": "end",
    "issued": "creation",
    "created": "creation",
    "deleted": "deletion",
    "changed": "change",
    "consumed": "access",
    "exported": "access",
    "erased": "deletion",
}

USER_SUBJECT_PREFIX = "user:"


def category(event_type: EventType) -> str | None:
    """The ECS category of an event type, or None when its source is not mapped."""
    return CATEGORY_BY_TYPE.get(event_type) or CATEGORY_BY_SOURCE.get(event_type.source)


@functools.cache
def _by_type(event_type: EventType) -> tuple[str, str | None, str, str]:
    """``(event.kind, event.category, event.type, event.action)`` of an event type (computed
    once per type: the enum is finite)."""
    action = event_type.value.rsplit(":", 1)[-1]
    # ECS: detector findings are "alert" documents, everything else plain events.
    kind = "alert" if event_type.source == "alert" else "event"
    return kind, category(event_type), TYPE_BY_ACTION.get(action, "info"), event_type.value


def to_ecs(event: AuditEvent) -> dict[str, Any]:
    """The ECS document for one event, as a flat dict of dotted field names."""
    kind, cat, ecs_type, action = _by_type(event.type)
    target_user = _target_user(event.subject)
    fields: dict[str, Any] = {
        "@timestamp": _timestamp(event.time),
        "ecs.version": ECS_VERSION,
        "event.kind": kind,
        "event.dataset": DATASET,
        "event.action": action,
        "event.category": [cat] if cat else None,
        "event.type": [ecs_type],
        "event.outcome": event.outcome.value,
        "event.reason": event.reason,
        "user.id": event.actor,
        "user.target.id": target_user,
        "labels.subject": None if target_user else event.subject,
        "source.ip": event.client_ip,
        "user_agent.original": event.user_agent,
        "http.request.id": event.request_id,
        "related.ip": [event.client_ip] if event.client_ip else None,
        "related.user": _related_users(event.actor, target_user),
        "bastion.details": dict(event.details) if event.details else None,
    }
    return {key: value for key, value in fields.items() if value is not None}


def _timestamp(time: datetime) -> str:
    if time.tzinfo is UTC:
        return time.isoformat().removesuffix("+00:00") + "Z"
    return time.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _target_user(subject: str | None) -> str | None:
    if subject and subject.startswith(USER_SUBJECT_PREFIX):
        return subject.removeprefix(USER_SUBJECT_PREFIX) or None
    return None


def _related_users(actor: str | None, target_user: str | None) -> list[str] | None:
    users = [u for u in (actor, target_user) if u]
    return list(dict.fromkeys(users)) or None


@functools.cache
def _type_members(event_type: EventType) -> str:
    """The members that depend only on the event type, as JSON text (once per type)."""
    kind, cat, ecs_type, action = _by_type(event_type)
    members = [
        f'"ecs.version": {json_text(ECS_VERSION)}',
        f'"event.kind": {json_text(kind)}',
        f'"event.dataset": {json_text(DATASET)}',
        f'"event.action": {json_text(action)}',
    ]
    if cat:
        members.append(f'"event.category": [{json_text(cat)}]')
    members.append(f'"event.type": [{json_text(ecs_type)}]')
    return ", ".join(members)


def _value(value: Any) -> str:
    return json_text(value) if type(value) is str else json_tree(value)


@functools.cache
def _head(event_type: EventType, outcome: str) -> str:
    """The members from ``ecs.version`` to ``event.outcome`` (once per type and outcome)."""
    return f'{_type_members(event_type)}, "event.outcome": {json_text(outcome)}'


def ecs_members(  # noqa: PLR0912, PLR0915 - one branch per optional field
    event: AuditEvent, utc_stamp: str | None = None, details_json: str | None = None
) -> str:
    """The members of ``json_value(to_ecs(event))``, byte for byte, without the braces.

    ``event.details`` must be a tree (no cycles), as scrubbed details are. One pass over the
    fields with the members that depend only on the event's type and outcome cached, and each
    text value written by ``json_text`` directly (what :func:`_value` does for text).

    A caller that has them passes ``utc_stamp``, the chain's
    :func:`bastion.audit.chain.utc_stamp` of ``event.time``, and ``details_json``,
    ``json.dumps(event.details)``: what the ECS line writes is derived from them.
    """
    time = event.time
    if utc_stamp is not None and utc_stamp[4] == "-":
        # The chain's stamp (four-digit year) is isoformat's in UTC, but for the fraction
        # isoformat leaves out when it is zero.
        stamp = utc_stamp if time.microsecond else utc_stamp[:19] + "Z"
    elif time.tzinfo is UTC:
        stamp = time.isoformat().removesuffix("+00:00") + "Z"
    else:
        stamp = _timestamp(time)
    outcome = event.outcome._value_  # the enum's value without the descriptor's cost
    out = [
        '"@timestamp": ',
        json_text(stamp),
        ", ",
        _head(event.type, outcome) if type(outcome) is str else _slow_head(event),
    ]
    reason, actor, subject = event.reason, event.actor, event.subject
    client_ip, user_agent, request_id = event.client_ip, event.user_agent, event.request_id
    if reason is not None:
        out += (', "event.reason": ', json_text(reason) if type(reason) is str else _value(reason))
    user = ""
    if actor is not None:
        user = json_text(actor) if type(actor) is str else _value(actor)
        out += (', "user.id": ', user)
    target_user = None
    if subject is not None:
        target_user = _target_user(subject)
        if target_user is not None:
            out += (', "user.target.id": ', json_text(target_user))
        else:
            value = json_text(subject) if type(subject) is str else _value(subject)
            out += (', "labels.subject": ', value)
    if client_ip is not None:
        ip = json_text(client_ip) if type(client_ip) is str else _value(client_ip)
        out += (', "source.ip": ', ip)
    else:
        ip = ""
    if user_agent is not None:
        value = json_text(user_agent) if type(user_agent) is str else _value(user_agent)
        out += (', "user_agent.original": ', value)
    if request_id is not None:
        value = json_text(request_id) if type(request_id) is str else _value(request_id)
        out += (', "http.request.id": ', value)
    if client_ip:
        out += (', "related.ip": [', ip, "]")
    if actor and type(actor) is str:  # json_tree([actor, target_user]) without duplicates
        if target_user and target_user != actor:
            out += (', "related.user": [', user, ", ", json_text(target_user), "]")
        else:
            out += (', "related.user": [', user, "]")
    elif actor or target_user:
        related_users = _related_users(actor, target_user)
        if related_users:
            out += (', "related.user": ', json_tree(related_users))
    details = event.details
    if details:
        if details_json is None:
            document = details if isinstance(details, dict) else dict(details)
            details_json = json_tree(document)
        out += (', "bastion.details": ', details_json)
    return "".join(out)


def _slow_head(event: AuditEvent) -> str:
    return f'{_type_members(event.type)}, "event.outcome": {_value(event.outcome.value)}'
