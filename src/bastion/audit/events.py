"""The security event vocabulary: event types with the grammar ``source:subject:action``.

Every audit event Bastion records has one of these types; no string literals elsewhere.
`docs/audit-events.md` is generated from this enum.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any


class EventType(enum.StrEnum):
    """Audit event types: ``source:subject:action``."""

    HTTP_REQUEST_REJECTED = "http:request:rejected"
    HTTP_REQUEST_FAILED = "http:request:failed"
    SYSTEM_SERVICE_STARTED = "system:service:started"
    SYSTEM_SERVICE_STOPPED = "system:service:stopped"
    SYSTEM_SETUP_TOKEN_ISSUED = "system:setup_token:issued"  # noqa: S105 - an event name
    SYSTEM_SETUP_TOKEN_CONSUMED = "system:setup_token:consumed"  # noqa: S105 - an event name
    SYSTEM_SETUP_TOKEN_REJECTED = "system:setup_token:rejected"  # noqa: S105 - an event name
    AUDIT_QUEUE_OVERFLOWED = "audit:queue:overflowed"
    AUDIT_CHECKPOINT_CREATED = "audit:checkpoint:created"
    AUDIT_EVENTS_PURGED = "audit:events:purged"
    AUDIT_CHAIN_VERIFIED = "audit:chain:verified"
    AUDIT_EVENTS_SEARCHED = "audit:events:searched"
    RATELIMIT_LIMIT_EXCEEDED = "protections:ratelimit:exceeded"
    HTTP_CSRF_REJECTED = "http:csrf:rejected"
    # -- identity: accounts ----------------------------------------------------------------
    IDENTITY_SETUP_COMPLETED = "identity:setup:completed"
    IDENTITY_ACCOUNT_REGISTERED = "identity:account:registered"
    IDENTITY_ACCOUNT_REGISTRATION_REPEATED = "identity:account:registration_repeated"
    IDENTITY_ACCOUNT_LOCKED = "identity:account:locked"
    IDENTITY_ACCOUNT_UNLOCKED = "identity:account:unlocked"
    IDENTITY_ACCOUNT_DISABLED = "identity:account:disabled"
    IDENTITY_ACCOUNT_ENABLED = "identity:account:enabled"
    IDENTITY_PROFILE_UPDATED = "identity:profile:updated"
    IDENTITY_EMAIL_VERIFIED = "identity:email:verified"
    IDENTITY_EMAIL_CHANGE_REQUESTED = "identity:email:change_requested"
    IDENTITY_EMAIL_CHANGED = "identity:email:changed"
    IDENTITY_ACCOUNT_TOKEN_REJECTED = "identity:account_token:rejected"  # noqa: S105 - a name
    # -- identity: passwords ---------------------------------------------------------------
    IDENTITY_PASSWORD_CHANGED = "identity:password:changed"  # noqa: S105 - an event name
    IDENTITY_PASSWORD_CHANGE_FAILED = "identity:password:change_failed"  # noqa: S105
    IDENTITY_PASSWORD_RESET_REQUESTED = "identity:password:reset_requested"  # noqa: S105
    IDENTITY_PASSWORD_RESET = "identity:password:reset"  # noqa: S105 - an event name
    IDENTITY_PASSWORD_RESET_FORCED = "identity:password:reset_forced"  # noqa: S105
    IDENTITY_PASSWORD_REHASHED = "identity:password:rehashed"  # noqa: S105 - an event name
    # -- identity: login and sessions ------------------------------------------------------
    IDENTITY_LOGIN_SUCCEEDED = "identity:login:succeeded"
    IDENTITY_LOGIN_FAILED = "identity:login:failed"
    IDENTITY_LOGIN_THROTTLED = "identity:login:throttled"
    IDENTITY_SESSION_REVOKED = "identity:session:revoked"
    # -- identity: multi-factor authentication and step-up -------------------------------
    IDENTITY_MFA_CHALLENGE_ISSUED = "identity:mfa:challenge_issued"
    IDENTITY_MFA_SUCCEEDED = "identity:mfa:succeeded"
    IDENTITY_MFA_FAILED = "identity:mfa:failed"
    IDENTITY_MFA_THROTTLED = "identity:mfa:throttled"
    IDENTITY_MFA_TOTP_ENROLLMENT_STARTED = "identity:mfa:totp_enrollment_started"
    IDENTITY_MFA_TOTP_ACTIVATED = "identity:mfa:totp_activated"
    IDENTITY_MFA_TOTP_REMOVED = "identity:mfa:totp_removed"
    IDENTITY_MFA_RECOVERY_CODES_GENERATED = "identity:mfa:recovery_codes_generated"
    IDENTITY_MFA_RECOVERY_CODE_USED = "identity:mfa:recovery_code_used"
    IDENTITY_MFA_RESET = "identity:mfa:reset"
    IDENTITY_MFA_ENROLLMENT_REQUIRED = "identity:mfa:enrollment_required"
    IDENTITY_STEP_UP_SUCCEEDED = "identity:step_up:succeeded"
    IDENTITY_STEP_UP_REQUIRED = "identity:step_up:required"
    # -- identity: WebAuthn passkeys -------------------------------------------------------
    IDENTITY_WEBAUTHN_REGISTERED = "identity:webauthn:registered"
    IDENTITY_WEBAUTHN_USED = "identity:webauthn:used"
    IDENTITY_WEBAUTHN_RENAMED = "identity:webauthn:renamed"
    IDENTITY_WEBAUTHN_DELETED = "identity:webauthn:deleted"
    IDENTITY_WEBAUTHN_FAILED = "identity:webauthn:failed"
    #: A valid signature with a sign count not above the stored one: a cloned authenticator.
    IDENTITY_WEBAUTHN_SIGN_COUNT_REGRESSED = "identity:webauthn:sign_count_regressed"
    # -- tokens ----------------------------------------------------------------------------
    TOKEN_ACCESS_REJECTED = "token:access:rejected"  # noqa: S105 - an event name
    TOKEN_REFRESH_REJECTED = "token:refresh:rejected"  # noqa: S105 - an event name
    TOKEN_REFRESH_REUSE_DETECTED = "token:refresh:reuse_detected"  # noqa: S105 - an event name
    TOKEN_SIGNING_KEY_CREATED = "token:signing_key:created"  # noqa: S105 - an event name
    TOKEN_SIGNING_KEY_ROTATED = "token:signing_key:rotated"  # noqa: S105 - an event name
    # -- mail ------------------------------------------------------------------------------
    MAIL_DELIVERY_FAILED = "mail:delivery:failed"
    # -- authz: decision log and store administration (bastion.authz.service) -------------
    AUTHZ_CHECK_ALLOWED = "authz:check:allowed"
    AUTHZ_CHECK_DENIED = "authz:check:denied"
    AUTHZ_API_FORBIDDEN = "authz:api:forbidden"
    AUTHZ_STORE_CREATED = "authz:store:created"
    AUTHZ_STORE_DELETED = "authz:store:deleted"
    AUTHZ_MODEL_WRITTEN = "authz:model:written"
    AUTHZ_TUPLES_WRITTEN = "authz:tuples:written"
    AUTHZ_TUPLES_CASCADED = "authz:tuples:cascaded"
    # -- authz: Bastion's own roles and just-in-time elevation (bastion.authz.builtin) -----
    AUTHZ_ROLE_GRANTED = "authz:role:granted"
    AUTHZ_ELEVATION_REQUESTED = "authz:elevation:requested"
    AUTHZ_ELEVATION_APPROVED = "authz:elevation:approved"
    AUTHZ_ELEVATION_DENIED = "authz:elevation:denied"
    AUTHZ_ELEVATION_REVOKED = "authz:elevation:revoked"
    AUTHZ_ELEVATION_USED = "authz:elevation:used"
    AUTHZ_ELEVATION_EXPIRED = "authz:elevation:expired"
    # -- alerts: detectors on the event stream and their delivery (bastion.monitoring) ------
    ALERT_BRUTE_FORCE = "alert:brute_force:detected"
    ALERT_CREDENTIAL_STUFFING = "alert:credential_stuffing:detected"
    ALERT_PASSWORD_SPRAYING = "alert:password_spraying:detected"  # noqa: S105 - an event name
    ALERT_REFRESH_TOKEN_REUSE = "alert:refresh_token_reuse:detected"  # noqa: S105 - a name
    ALERT_DENIAL_BURST = "alert:denial_burst:detected"
    ALERT_ADMIN_OFF_HOURS = "alert:admin_off_hours:detected"
    ALERT_NEW_DEVICE_LOGIN = "alert:new_device_login:detected"
    ALERT_DELIVERY_FAILED = "alert:delivery:dead_lettered"
    # -- privacy: data subject rights (bastion.privacy) ------------------------------------
    PRIVACY_DATA_EXPORTED = "privacy:data:exported"
    PRIVACY_ACCOUNT_ERASED = "privacy:account:erased"
    # -- configuration ---------------------------------------------------------------------
    CONFIG_SETTINGS_CHANGED = "config:settings:changed"

    @property
    def source(self) -> str:
        return self.value.split(":", 1)[0]

    @property
    def description(self) -> str | None:
        """What the event means, for ``docs/audit-events.md`` (see :data:`DESCRIPTIONS`)."""
        return DESCRIPTIONS.get(self)


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


#: ``details`` not given: a fresh empty dict (the field's default factory).
_NO_DETAILS: Any = object()


@dataclass(frozen=True, slots=True, init=False)
class AuditEvent:
    """One security event. ``details`` must never hold secrets (the recorder scrubs known keys)."""

    type: EventType
    outcome: Outcome
    time: datetime
    actor: str | None = None
    subject: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def __init__(  # noqa: PLR0917 - the dataclass's fields, positional as generated
        self,
        type: EventType,  # noqa: A002 - the field's name
        outcome: Outcome,
        time: datetime,
        actor: str | None = None,
        subject: str | None = None,
        client_ip: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] = _NO_DETAILS,
    ) -> None:
        # The generated __init__ of a frozen dataclass, through the slots' own setters: it
        # fetches ``object.__setattr__`` and looks each name up per field (twice the cost; an
        # event is built on the request path).
        _SET_TYPE(self, type)
        _SET_OUTCOME(self, outcome)
        _SET_TIME(self, time)
        _SET_ACTOR(self, actor)
        _SET_SUBJECT(self, subject)
        _SET_CLIENT_IP(self, client_ip)
        _SET_USER_AGENT(self, user_agent)
        _SET_REQUEST_ID(self, request_id)
        _SET_REASON(self, reason)
        _SET_DETAILS(self, {} if details is _NO_DETAILS else details)


(
    _SET_TYPE,
    _SET_OUTCOME,
    _SET_TIME,
    _SET_ACTOR,
    _SET_SUBJECT,
    _SET_CLIENT_IP,
    _SET_USER_AGENT,
    _SET_REQUEST_ID,
    _SET_REASON,
    _SET_DETAILS,
) = (vars(AuditEvent)[item.name].__set__ for item in fields(AuditEvent))


class UnfrozenEvent:
    """:class:`AuditEvent`'s very slots without its frozen ``__setattr__``: the request path
    (:func:`bastion.audit.context.event_from_scope`) makes one with ``object.__new__``, sets its
    fields with plain attribute stores, then turns it into an ``AuditEvent`` by assigning
    ``__class__`` (the same layout; ``tests/unit/audit/test_context.py`` checks the result equals
    the constructor's). A fifth of the constructor's cost: each slot setter called as a function
    goes through a method wrapper and an argument tuple. Never kept as it is.
    """

    __slots__ = AuditEvent.__slots__

    type: EventType
    outcome: Outcome
    time: datetime
    actor: str | None
    subject: str | None
    client_ip: str | None
    user_agent: str | None
    request_id: str | None
    reason: str | None
    details: Mapping[str, Any]


#: One sentence per event type for the generated catalog (``bastion audit catalog`` writes
#: ``docs/audit-events.md``). Adding a member to :class:`EventType` without a line here fails
#: ``tests/unit/audit/test_catalog.py``: every event an operator may see must be explained.
DESCRIPTIONS: dict[EventType, str] = {
    EventType.HTTP_REQUEST_REJECTED: "A request was refused as malformed, too large, of the "
    "wrong content type or failing validation (400/413/415/422); `reason` is the problem code.",
    EventType.HTTP_REQUEST_FAILED: "A request failed with an unexpected server error (500).",
    EventType.HTTP_CSRF_REJECTED: "A cookie-authenticated unsafe request failed the CSRF "
    "checks (token or origin).",
    EventType.SYSTEM_SERVICE_STARTED: "A Bastion process started.",
    EventType.SYSTEM_SERVICE_STOPPED: "A Bastion process stopped.",
    EventType.SYSTEM_SETUP_TOKEN_ISSUED: "A one-time setup token for the first administrator "
    "was issued (the token itself is never recorded).",
    EventType.SYSTEM_SETUP_TOKEN_CONSUMED: "The setup token was used to create the first "
    "administrator.",
    EventType.SYSTEM_SETUP_TOKEN_REJECTED: "A wrong, expired or already used setup token was "
    "presented.",
    EventType.AUDIT_QUEUE_OVERFLOWED: "Audit events were dropped because the recorder's queue "
    "was full; `details.dropped` counts them (a visible gap, never a silent one).",
    EventType.AUDIT_CHECKPOINT_CREATED: "The audit chain head was signed and stored as a "
    "checkpoint (`details.seq`, `details.kid`).",
    EventType.AUDIT_EVENTS_PURGED: "Events older than the retention period were deleted; the "
    "chain now starts at a signed checkpoint (`details.anchor_seq`).",
    EventType.AUDIT_CHAIN_VERIFIED: "The audit chain was verified (`bastion audit verify`); "
    "failure names the first bad event.",
    EventType.AUDIT_EVENTS_SEARCHED: "An administrator searched the audit trail (the filters "
    "are in `details`).",
    EventType.RATELIMIT_LIMIT_EXCEEDED: "A client crossed a rate limit and was answered 429 "
    "(`details` names the policy and key kind).",
    EventType.IDENTITY_SETUP_COMPLETED: "The first administrator account was created.",
    EventType.IDENTITY_ACCOUNT_REGISTERED: "A new account was registered.",
    EventType.IDENTITY_ACCOUNT_REGISTRATION_REPEATED: "Someone tried to register an email "
    "address that already has an account (the owner is mailed; the answer does not tell).",
    EventType.IDENTITY_ACCOUNT_LOCKED: "An account (or client IP) crossed the failed-login "
    "threshold: logins are delayed (bounded backoff lockout).",
    EventType.IDENTITY_ACCOUNT_UNLOCKED: "The login backoff of an account was cleared (by an "
    "administrator or a password reset).",
    EventType.IDENTITY_ACCOUNT_DISABLED: "An administrator disabled an account; every session "
    "ended.",
    EventType.IDENTITY_ACCOUNT_ENABLED: "An administrator enabled a disabled account.",
    EventType.IDENTITY_PROFILE_UPDATED: "A user changed their profile.",
    EventType.IDENTITY_EMAIL_VERIFIED: "An email address was verified with its mailed token.",
    EventType.IDENTITY_EMAIL_CHANGE_REQUESTED: "A user asked to change their email address "
    "(a confirmation token was mailed to the new one).",
    EventType.IDENTITY_EMAIL_CHANGED: "A user's email address changed (confirmed).",
    EventType.IDENTITY_ACCOUNT_TOKEN_REJECTED: "A verification, reset or email-change token was "
    "wrong, expired or already used.",
    EventType.IDENTITY_PASSWORD_CHANGED: "A user changed their password.",
    EventType.IDENTITY_PASSWORD_CHANGE_FAILED: "A password change was refused (wrong current "
    "password or a password the policy refuses).",
    EventType.IDENTITY_PASSWORD_RESET_REQUESTED: "A password reset was requested for an "
    "address (answered the same whether or not it has an account).",
    EventType.IDENTITY_PASSWORD_RESET: "A password was reset with a mailed reset token.",
    EventType.IDENTITY_PASSWORD_RESET_FORCED: "An administrator voided a password and mailed a "
    "reset token; every session ended.",
    EventType.IDENTITY_PASSWORD_REHASHED: "A stored password hash was upgraded to the current "
    "parameters at login.",
    EventType.IDENTITY_LOGIN_SUCCEEDED: "A login succeeded (a session started).",
    EventType.IDENTITY_LOGIN_FAILED: "A login failed (`reason`: unknown account, wrong "
    "password, disabled...).",
    EventType.IDENTITY_LOGIN_THROTTLED: "A login attempt was refused by the failed-login "
    "backoff before the password was checked.",
    EventType.IDENTITY_SESSION_REVOKED: "A session ended before its time (logout, password "
    "change, administrator, refresh-token reuse).",
    EventType.IDENTITY_MFA_CHALLENGE_ISSUED: "A login passed the password and now waits for a "
    "second factor.",
    EventType.IDENTITY_MFA_SUCCEEDED: "A second factor was verified.",
    EventType.IDENTITY_MFA_FAILED: "A second factor was wrong.",
    EventType.IDENTITY_MFA_THROTTLED: "Second-factor attempts were refused by the attempt limit.",
    EventType.IDENTITY_MFA_TOTP_ENROLLMENT_STARTED: "A user started enrolling an authenticator "
    "app (TOTP).",
    EventType.IDENTITY_MFA_TOTP_ACTIVATED: "An authenticator app (TOTP) was confirmed and "
    "activated.",
    EventType.IDENTITY_MFA_TOTP_REMOVED: "An authenticator app (TOTP) was removed.",
    EventType.IDENTITY_MFA_RECOVERY_CODES_GENERATED: "A new set of recovery codes was "
    "generated (the old set stopped working).",
    EventType.IDENTITY_MFA_RECOVERY_CODE_USED: "A recovery code was used in place of a second "
    "factor.",
    EventType.IDENTITY_MFA_RESET: "An administrator removed every second factor of an account.",
    EventType.IDENTITY_MFA_ENROLLMENT_REQUIRED: "A request was refused because the policy "
    "requires the account to enroll a second factor first (administrators by default).",
    EventType.IDENTITY_STEP_UP_SUCCEEDED: "A user re-authenticated to reach a higher assurance "
    "level for a sensitive action.",
    EventType.IDENTITY_STEP_UP_REQUIRED: "A sensitive action was refused until the user "
    "re-authenticates (step-up).",
    EventType.IDENTITY_WEBAUTHN_REGISTERED: "A passkey (WebAuthn credential) was registered.",
    EventType.IDENTITY_WEBAUTHN_USED: "A passkey was used to authenticate.",
    EventType.IDENTITY_WEBAUTHN_RENAMED: "A passkey was renamed.",
    EventType.IDENTITY_WEBAUTHN_DELETED: "A passkey was deleted.",
    EventType.IDENTITY_WEBAUTHN_FAILED: "A passkey ceremony failed verification.",
    EventType.IDENTITY_WEBAUTHN_SIGN_COUNT_REGRESSED: "A passkey signed with a counter not "
    "above the stored one: a possibly cloned authenticator.",
    EventType.TOKEN_ACCESS_REJECTED: "An access token was refused (`reason`: expired, bad "
    "signature, revoked session...).",
    EventType.TOKEN_REFRESH_REJECTED: "A refresh token was refused (unknown, expired, or its "
    "session ended).",
    EventType.TOKEN_REFRESH_REUSE_DETECTED: "An already rotated refresh token was presented "
    "again: the session was revoked (likely token theft).",
    EventType.TOKEN_SIGNING_KEY_CREATED: "A token signing key was generated (first start or "
    "the active key expired).",
    EventType.TOKEN_SIGNING_KEY_ROTATED: "The token signing key was rotated (`bastion keys "
    "rotate`).",
    EventType.MAIL_DELIVERY_FAILED: "A mail could not be delivered after its retries.",
    EventType.AUTHZ_CHECK_ALLOWED: "An authorization check allowed an action (decision log).",
    EventType.AUTHZ_CHECK_DENIED: "An authorization check denied an action (decision log).",
    EventType.AUTHZ_API_FORBIDDEN: "A caller without the right was refused by the "
    "authorization API.",
    EventType.AUTHZ_STORE_CREATED: "An authorization store was created.",
    EventType.AUTHZ_STORE_DELETED: "An authorization store was deleted.",
    EventType.AUTHZ_MODEL_WRITTEN: "A new authorization model was written (a policy change).",
    EventType.AUTHZ_TUPLES_WRITTEN: "Relationship tuples were written or deleted (grants changed).",
    EventType.AUTHZ_TUPLES_CASCADED: "Tuples were removed as a consequence of another change "
    "(cascade).",
    EventType.AUTHZ_ROLE_GRANTED: "A permanent administration role was granted (the first "
    "administrator, or an existing administrator carried over).",
    EventType.AUTHZ_ELEVATION_REQUESTED: "A user asked for a time-limited role, with a reason.",
    EventType.AUTHZ_ELEVATION_APPROVED: "Another administrator approved a time-limited role "
    "(the grant is a conditional tuple that expires by itself).",
    EventType.AUTHZ_ELEVATION_DENIED: "A request for a time-limited role was refused (by an "
    "administrator, or a self-approval attempt).",
    EventType.AUTHZ_ELEVATION_REVOKED: "A time-limited role was withdrawn before it expired.",
    EventType.AUTHZ_ELEVATION_USED: "An administration decision was allowed only thanks to a "
    "time-limited role.",
    EventType.AUTHZ_ELEVATION_EXPIRED: "A time-limited role reached its end (recorded when "
    "first observed: a check, a listing, or the periodic sweep).",
    EventType.ALERT_BRUTE_FORCE: "Many guesses at one account's password or second factor "
    "(`details.severity`, "
    "`details.evidence`: the sequence numbers of the events that triggered it).",
    EventType.ALERT_CREDENTIAL_STUFFING: "One client IP tried many accounts, or many IPs "
    "logged in with a very low success ratio.",
    EventType.ALERT_PASSWORD_SPRAYING: "One network tried existing accounts broadly with few "
    "attempts each (a password tried across many accounts).",
    EventType.ALERT_REFRESH_TOKEN_REUSE: "A rotated refresh token was replayed (likely theft); "
    "the session was revoked.",
    EventType.ALERT_DENIAL_BURST: "A burst of authorization denials or rate-limit refusals "
    "from one actor or IP.",
    EventType.ALERT_ADMIN_OFF_HOURS: "An administrative action outside the configured hours.",
    EventType.ALERT_NEW_DEVICE_LOGIN: "A login from a device or network the account had not "
    "used before (the user is mailed).",
    EventType.ALERT_DELIVERY_FAILED: "An alert could not be delivered to a webhook after every "
    "retry: a dead-letter record was stored.",
    EventType.PRIVACY_DATA_EXPORTED: "A user downloaded everything Bastion holds about them "
    "(`GET /v1/account/export`, GDPR Art. 15 / 20, CCPA right to know); `details.sections` "
    "lists what the document held.",
    EventType.PRIVACY_ACCOUNT_ERASED: "An account was erased (right to erasure, GDPR Art. 17): "
    "its credentials, sessions, factors, tokens, mails and grants deleted, the account row "
    "pseudonymized; `actor` is the user or the administrator, `subject` the account.",
    EventType.CONFIG_SETTINGS_CHANGED: "A process started with settings that differ from the "
    "previous start (or the first start); `details.changed` names the settings, never a value.",
}
