"""Step-up and the enrollment policy, as FastAPI dependencies.

**Step-up.** A sensitive operation needs an authentication of the last
``step_up_max_age_seconds`` (5 minutes) at the level the account can reach: aal2 when the user
has a second factor, else aal1 (the password). :func:`step_up_dependency` makes a dependency
that checks the session's ``auth_time`` and ``acr`` (read from the database, not the token, so
a re-authentication counts at once) and answers 401 ``step_up_required`` with what would satisfy
it (RFC 9470: ``acr_values``, ``max_age``; plus ``methods`` and ``step_up_endpoint``). The
dependency is *declarative*: it carries :data:`STEP_UP_MARKER`, and a test walks the route table
and fails for any route matching :data:`SENSITIVE_ROUTES` (or under ``/v1/admin/``) without it.

Administration operations (every ``/v1/admin/`` route) also demand that the caller has a second
factor while ``required_for_admins`` is on (403 ``mfa_enrollment_required``): the permission may
come from a role or a time-limited elevation in the authorization engine, not only from the
``is_admin`` flag the enrollment policy below reads.

**Enrollment policy.** :func:`principal_resolver` adds it to authentication, and
:func:`enforcing_principal` makes that one flat dependency: an
account the policy requires to have a second factor (administrators by default) and that has
none may only use :data:`ENROLLMENT_PATHS` (enroll a factor, log out); everything else answers
403 ``mfa_enrollment_required``. Sessions at aal2 skip the check (they proved a factor); the
answer for an aal1 session is cached per user for :data:`POLICY_CACHE_SECONDS`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from fastapi import Depends, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import Connection

from bastion.audit.events import EventType, Outcome
from bastion.identity.accounts.users import User, read_user
from bastion.identity.mfa.enrolled import EnrollmentRead
from bastion.identity.mfa.errors import MfaEnrollmentRequired, StepUpRequired
from bastion.identity.mfa.services import MfaService
from bastion.identity.mfa.session_auth import SessionAuth, level_at_least, session_auth_of
from bastion.identity.sessions.auth import Authenticator, Principal, bearer_scheme
from bastion.identity.tokens.claims import AssuranceLevel
from bastion.identity.tokens.errors import InvalidToken, InvalidTokenReason

__all__ = [
    "ENROLLMENT_PATHS",
    "SENSITIVE_ROUTES",
    "STEP_UP_ENDPOINT",
    "STEP_UP_MARKER",
    "enforcing_principal",
    "is_sensitive",
    "principal_resolver",
    "requires_step_up",
    "step_up_dependency",
]

PrincipalDependency = Callable[..., Awaitable[Principal]]
#: The caller of a request, authenticated and admitted by the enrollment policy (or an error).
#: The response, when given, receives the per-user RateLimit fields.
PrincipalResolver = Callable[[Request, Response | None], Awaitable[Principal]]

STEP_UP_ENDPOINT = "/v1/sessions/current/step-up"
#: Attribute set on step-up dependencies; its value is the route's minimum level.
STEP_UP_MARKER = "__bastion_step_up__"
#: Method + path patterns of sensitive operations (besides every ``/v1/admin/`` route). A new
#: sensitive route is added here; the route-table test then demands step-up on it.
SENSITIVE_ROUTES: tuple[tuple[str, str], ...] = (
    ("POST", r"/v1/account/password"),
    ("POST", r"/v1/account/email"),
    ("DELETE", r"/v1/account"),
    ("GET", r"/v1/account/export"),
    ("POST", r"/v1/account/mfa/totp"),
    ("DELETE", r"/v1/account/mfa/totp"),
    ("POST", r"/v1/account/mfa/recovery-codes"),
    ("POST", r"/v1/account/mfa/webauthn/.*"),
    ("PATCH", r"/v1/account/mfa/webauthn/.*"),
    ("DELETE", r"/v1/account/mfa/webauthn/.*"),
    ("POST", r"/v1/keys/.*"),
    ("POST", r".*/keys/rotate"),
)
#: Paths an account that must enroll a second factor may still use (prefix match for those
#: ending in "/").
ENROLLMENT_PATHS: tuple[tuple[str, str], ...] = (
    ("*", "/v1/account/mfa"),
    ("*", "/v1/account/mfa/"),
    ("GET", "/v1/account"),
    ("DELETE", "/v1/sessions/current"),
    ("POST", STEP_UP_ENDPOINT),
)
#: How long an aal1 session's "must enroll?" answer is reused by one worker. Enrolling in this
#: worker clears it at once; elsewhere the restriction may outlast enrollment this long (the
#: stricter direction), and an admin reset ends the user's sessions anyway.
POLICY_CACHE_SECONDS = 5.0


def is_sensitive(method: str, path: str) -> bool:
    if path.startswith("/v1/admin/") or path == "/v1/admin":
        return True
    return any(
        method == m and re.fullmatch(pattern, path) is not None for m, pattern in SENSITIVE_ROUTES
    )


def _is_admin_operation(path: str) -> bool:
    return path == "/v1/admin" or path.startswith("/v1/admin/")


def requires_step_up(dependency: object) -> AssuranceLevel | None:
    """The minimum level a step-up dependency demands; None for any other callable."""
    value = getattr(dependency, STEP_UP_MARKER, None)
    return value if isinstance(value, AssuranceLevel) else None


def _enrollment_lookup(
    paths: tuple[tuple[str, str], ...],
) -> Callable[[str, str], bool]:
    """``paths`` (:data:`ENROLLMENT_PATHS`' form) as a lookup made once: every entry is an
    exact (method, path) match, "*" standing for any method; an entry ending in "/" is also a
    prefix of the paths it allows. The answer is the walk's over the table: allowed when some
    entry's method is "*" or the request's, and its path is the request's or (ending in "/")
    a prefix of it. The path is compared as it is (no case folding, decoding or
    normalisation), as the walk did."""
    any_exact = frozenset(path for method, path in paths if method == "*")
    exact = frozenset((method, path) for method, path in paths if method != "*")
    any_prefixes = tuple(path for method, path in paths if method == "*" and path.endswith("/"))
    prefixes = tuple(
        (method, path) for method, path in paths if method != "*" and path.endswith("/")
    )

    def allowed(method: str, path: str) -> bool:
        if path in any_exact or (method, path) in exact or path.startswith(any_prefixes):
            return True
        return any(method == m and path.startswith(prefix) for m, prefix in prefixes)

    return allowed


#: Whether an account that must enroll may still call ``method path`` (:data:`ENROLLMENT_PATHS`).
_enrollment_allowed = _enrollment_lookup(ENROLLMENT_PATHS)


def _must_enroll(
    requires: Callable[[User], bool], read: EnrollmentRead, connection: Connection, user_id: str
) -> bool:
    """Whether the policy requires a factor of the user (``requires``) and they hold none."""
    user = read_user(connection, user_id)
    return user is not None and requires(user) and not read(connection, user_id).enrolled


def _methods_and_auth(
    read: EnrollmentRead, connection: Connection, session_id: str, user_id: str
) -> tuple[list[str], SessionAuth | None]:
    """The user's second-factor methods and the live session's authentication state."""
    return read(connection, user_id).methods, session_auth_of(connection, session_id, user_id)


class EnrollmentPolicy:
    """Decides (and caches per worker) whether an aal1 session's user must enroll first."""

    def __init__(self, mfa: MfaService) -> None:
        self.mfa = mfa
        self._cache: dict[str, tuple[float, bool]] = {}

    def forget(self, user_id: str) -> None:
        self._cache.pop(user_id, None)

    async def must_enroll(self, user_id: str) -> bool:
        hit = self._cache.get(user_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        mfa = self.mfa
        read = mfa.enrollment_read()
        if read is not None:  # one pure read (no transaction on PostgreSQL): the user, factors
            must = await mfa.database.read(
                partial(_must_enroll, mfa.requires_factor, read, user_id=user_id)
            )
        else:
            user = await mfa.database.read(partial(read_user, user_id=user_id))
            must = user is not None and mfa.requires_factor(user)
            must = must and not await mfa.has_factor(user_id)
        if len(self._cache) > 10_000:
            self._cache.clear()  # bounded memory under many users
        self._cache[user_id] = (time.monotonic() + POLICY_CACHE_SECONDS, must)
        return must

    async def admit(self, request: Request, who: Principal) -> None:
        if level_at_least(who.claims.acr, AssuranceLevel.AAL2):
            return
        if _enrollment_allowed(request.method, request.scope["path"]):
            return
        if await self.must_enroll(who.user_id):
            self.mfa.record(
                request.scope,
                EventType.IDENTITY_MFA_ENROLLMENT_REQUIRED,
                who.user_id,
                outcome=Outcome.FAILURE,
                reason="no_second_factor",
            )
            raise MfaEnrollmentRequired


def principal_resolver(authenticator: Authenticator, policy: EnrollmentPolicy) -> PrincipalResolver:
    """Authentication plus the enrollment policy, as a plain coroutine function: the one
    definition of "the caller" that :func:`enforcing_principal` and routes declaring a single
    dependency of their own (the OpenFGA-compatible API) both call."""

    async def resolve(request: Request, response: Response | None) -> Principal:
        who = await authenticator.authenticate(request, response)
        await policy.admit(request, who)
        return who

    return resolve


def enforcing_principal(resolve: PrincipalResolver) -> PrincipalDependency:
    """``resolve`` as one FastAPI dependency, documented as bearer authentication (each level
    of nested dependencies costs FastAPI's resolution on every request)."""

    async def current_principal(
        request: Request,
        response: Response,
        _: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
    ) -> Principal:
        return await resolve(request, response)

    return current_principal


class StepUpGuard:
    """The step-up check itself (also usable outside FastAPI)."""

    def __init__(self, mfa: MfaService) -> None:
        self.mfa = mfa

    async def check(
        self, who: Principal, scope: Any, *, minimum: AssuranceLevel = AssuranceLevel.AAL1
    ) -> None:
        """Raises ``StepUpRequired`` unless the session authenticated recently enough at the
        needed level; ``InvalidToken`` if the session is gone."""
        mfa = self.mfa
        # Pure reads, one unit of work when it can be (no transaction on PostgreSQL): the
        # answer decides this request only, nothing is written on it.
        read = mfa.enrollment_read()
        if read is not None:
            methods, state = await mfa.database.read(
                partial(_methods_and_auth, read, session_id=who.session_id, user_id=who.user_id)
            )
        else:
            methods = await mfa.methods_of(who.user_id)
            state = await mfa.database.read(
                partial(session_auth_of, session_id=who.session_id, user_id=who.user_id)
            )
        path = scope.get("path") or ""
        if not methods and mfa.settings.required_for_admins and _is_admin_operation(path):
            # Whoever performs an administration operation is an administrator for the MFA
            # policy, whatever gave them the permission (the ``is_admin`` mirror, a role in the
            # authorization engine, a time-limited elevation): without a factor, enroll first.
            mfa.record(
                scope,
                EventType.IDENTITY_MFA_ENROLLMENT_REQUIRED,
                who.user_id,
                outcome=Outcome.FAILURE,
                reason="admin_operation_without_factor",
            )
            raise MfaEnrollmentRequired
        needed = AssuranceLevel.AAL2 if methods else minimum
        if state is None:
            raise InvalidToken(InvalidTokenReason.SESSION_REVOKED)
        max_age = mfa.settings.step_up_max_age_seconds
        age = (mfa.clock.now() - state.auth_time).total_seconds()
        reason = None
        if age > max_age:
            reason = "stale"
        elif not level_at_least(state.acr, needed):
            reason = "insufficient_level"
        if reason is None:
            return
        mfa.record(
            scope,
            EventType.IDENTITY_STEP_UP_REQUIRED,
            who.user_id,
            outcome=Outcome.FAILURE,
            reason=reason,
            details={"path": scope.get("path"), "acr": state.acr.value, "needed": needed.value},
        )
        raise StepUpRequired(
            acr=needed.value,
            max_age=max_age,
            methods=methods or ["password"],
            endpoint=STEP_UP_ENDPOINT,
            reason=reason,
        )


def step_up_dependency(
    guard: StepUpGuard,
    principal: PrincipalDependency,
    *,
    minimum: AssuranceLevel = AssuranceLevel.AAL1,
) -> PrincipalDependency:
    """A dependency returning the :class:`Principal` once step-up is satisfied."""

    async def require_step_up(request: Request, who: Principal = Depends(principal)) -> Principal:
        await guard.check(who, request.scope, minimum=minimum)
        return who

    setattr(require_step_up, STEP_UP_MARKER, minimum)
    return require_step_up
