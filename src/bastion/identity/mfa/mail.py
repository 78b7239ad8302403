"""The mails of multi-factor authentication: every change to a user's factors is told to them,
so a takeover that adds or strips a factor does not go unnoticed."""

from __future__ import annotations

from bastion.identity.mail.interfaces import MailKind, MailMessage

__all__ = ["factor_changed", "mfa_reset", "recovery_code_used"]

_ADVICE = (
    "If this was not you, change your password now, review your account's security events "
    "and contact your administrator.\n"
)


def factor_changed(to: str, what: str) -> MailMessage:
    text = f"The sign-in security of your account changed: {what}.\n\n" + _ADVICE
    return MailMessage(to, "Your sign-in factors changed", text, MailKind.MFA_CHANGED)


def recovery_code_used(to: str, remaining: int) -> MailMessage:
    text = (
        "A recovery code of your account was just used to sign in or confirm an operation. "
        f"{remaining} unused code{'s' if remaining != 1 else ''} remain"
        f"{'s' if remaining == 1 else ''}; generate a new set when they run low.\n\n" + _ADVICE
    )
    return MailMessage(to, "A recovery code was used", text, MailKind.MFA_RECOVERY_CODE_USED)


def mfa_reset(to: str) -> MailMessage:
    text = (
        "An administrator removed every second factor of your account (authenticator app, "
        "passkeys, recovery codes) and signed you out everywhere. Sign in with your password "
        "and enroll a new factor.\n\n" + _ADVICE
    )
    return MailMessage(to, "Your second factors were reset", text, MailKind.MFA_RESET)
