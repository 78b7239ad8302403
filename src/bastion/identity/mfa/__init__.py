"""Multi-factor authentication: TOTP, recovery codes, login challenges, step-up, policy.

Modules: :mod:`.totp` (RFC 6238 over pyotp, QR codes with segno), :mod:`.recovery` (codes),
:mod:`.factors` (storage and single-use checks), :mod:`.enrolled` (an account's factors in
one statement), :mod:`.challenges` (login challenges),
:mod:`.attempts` (methods, failure backoff, audit), :mod:`.audits` (``bastion check``),
:mod:`.session_auth` (a session's ``amr``/``acr``/``auth_time``), :mod:`.services`
(:class:`MfaService`, the one entry point), :mod:`.stepup` (the step-up dependency and the
enrollment policy), :mod:`.routes` (``/v1/account/mfa/...``, ``/v1/sessions/mfa/...``),
:mod:`.errors` (the error tree), :mod:`.settings` (``BASTION_MFA__*``).

The seam for other factors (WebAuthn in :mod:`.webauthn`)
----------------------------------------------------------

``identity.mfa`` (an :class:`MfaService`, built in :func:`bastion.identity.services.build_identity`)
is all another factor needs:

1. **Be known to the policy.** Implement :class:`.interfaces.FactorSource` (``name``,
   ``methods``, ``is_enrolled(connection, user_id)``, ``remove_all(connection, user_id)``) and
   call ``identity.mfa.register_factor_source(source)`` once at build time. Then an account with
   a passkey gets a login challenge after its password, counts as "has a second factor" for the
   admin policy and step-up, and an admin MFA reset removes its passkeys too.
   ``await identity.mfa.methods_of(user_id)`` lists the methods a challenge accepts. A source
   that is also a ``SyncEnrollment`` and a ``SqlEnrollment`` (passkeys are) is asked inside one
   statement with the others (:mod:`.enrolled`): a pure read outside any transaction, one
   round trip on PostgreSQL; any other source makes every such read ask each source in turn.

2. **Complete a login challenge.** ``POST /v1/sessions`` answers **202**
   ``{"mfa_required": true, "challenge_token": "bst_mfa_...", "expires_in": 300, "methods":
   [...]}`` for an account with a factor. Your endpoints (e.g. ``/v1/sessions/mfa/webauthn/...``)
   may read the challenge without using it::

       pending = await identity.mfa.peek_challenge(challenge_token)   # raises InvalidChallenge
       pending.user_id, pending.transport                              # whose login; bearer/cookie

   and complete it, verifying the assertion *inside* the transaction that consumes the
   challenge (so a verified factor and a used challenge commit together)::

       async def verify(connection: AsyncConnection, user_id: str) -> None:
           ...  # raise InvalidMfaCode (or your own MfaError subclass) when it fails

       done = await identity.mfa.complete_challenge(
           challenge_token, "hwk", verifier=verify, scope=request.scope, pending=pending
       )   # pending: optional, spares a second peek (it must be this token's)
       done.tokens      # IssuedTokens of the new session: amr ["pwd", "hwk", "mfa"], acr aal2
       done.transport   # answer with the login's transport (sessions.routes.answer shape)

   ``method`` is ``"otp" | "recovery" | "hwk" | "swk"``; ``"otp"``/``"recovery"`` take
   ``code=`` instead of ``verifier=``. Failures are counted (challenge ``failures``, the
   per-user backoff shared with TOTP, the per-IP login backoff) and audited here; raise, don't
   return False.

3. **Step-up and enrollment mark the session.** To re-authenticate an existing session with
   a factor (step-up), verify it the same way, under the same backoff and audit::

       state = await identity.mfa.verify_for_session(
           user, session_id, "hwk", verifier=verify, scope=request.scope
       )   # SessionAuth: amr, acr, auth_time; answer like POST /v1/sessions/current/step-up

   When a factor was proven by other means (the first use of a just-registered passkey), call
   ``await identity.mfa.mark_authenticated(session_id, user_id, [AuthMethod.HARDWARE_KEY],
   scope=request.scope)``. Both add the method to the session's ``amr`` (plus ``mfa`` when a
   password was used too), raise ``acr`` to aal2 (never lower it) and set ``auth_time`` to now
   (:mod:`.session_auth`); tokens issued afterwards carry it. The step-up dependency
   (:class:`.stepup.StepUpGuard`) reads exactly these.

4. **Declare sensitive routes.** Adding or removing a factor is sensitive: put
   ``Depends(identity.step_up)`` on the route (it returns the :class:`Principal`), or list it
   in the route's ``dependencies``. ``tests/functional/test_mfa_step_up_routes.py`` enumerates
   the route table and fails for a sensitive route without it (the maintained list is
   :data:`bastion.identity.mfa.stepup.SENSITIVE_ROUTES`; every ``/v1/admin/`` route is
   sensitive). Use ``identity.principal`` (never ``authenticator.dependency()``) for plain
   authentication: it enforces the enrollment policy (403 ``mfa_enrollment_required`` for an
   admin without a factor, except on :data:`.stepup.ENROLLMENT_PATHS`, where your
   registration endpoints belong: ``/v1/account/mfa/`` is already a prefix there).
"""

from __future__ import annotations
