"""The text of every mail Bastion sends.

Tokens travel on a line of their own, ``Token: <token>``, never inside a URL: a URL ends up in
browser history, proxy logs and ``Referer`` headers. The application's front end asks the user
to paste the token (or reads it from a link fragment it builds itself).
"""

from __future__ import annotations

from bastion.identity.mail.interfaces import MailKind, MailMessage

__all__ = [
    "email_change_requested",
    "email_changed",
    "password_changed",
    "password_reset",
    "registration_attempt",
    "verify_email",
]

_FOOTER = "\n\nThis mail was sent by Bastion. Never share the token above with anyone.\n"


def _minutes(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{seconds // 60} minutes"


def verify_email(to: str, token: str, ttl_seconds: int) -> MailMessage:
    text = (
        "Confirm your email address to finish signing up.\n\n"
        f"Token: {token}\n\n"
        f"The token works once and expires in {_minutes(ttl_seconds)}. If you did not sign up "
        "with this address, ignore this mail: nothing happens without the token." + _FOOTER
    )
    return MailMessage(to, "Confirm your email address", text, MailKind.VERIFY_EMAIL)


def confirm_new_email(to: str, token: str, ttl_seconds: int) -> MailMessage:
    text = (
        "Confirm this address as the new email address of your account.\n\n"
        f"Token: {token}\n\n"
        f"The token works once and expires in {_minutes(ttl_seconds)}. If you did not ask for "
        "this change, ignore this mail." + _FOOTER
    )
    return MailMessage(to, "Confirm your new email address", text, MailKind.VERIFY_EMAIL)


def registration_attempt(to: str) -> MailMessage:
    text = (
        "Someone tried to sign up with this email address, which already has an account.\n\n"
        "If it was you, sign in instead, or reset your password if you forgot it. If it was "
        "not you, you need not do anything: your account is unchanged.\n"
    )
    return MailMessage(to, "Sign-up attempt for your account", text, MailKind.REGISTRATION_ATTEMPT)


def password_reset(to: str, token: str, ttl_seconds: int) -> MailMessage:
    text = (
        "A password reset was requested for your account.\n\n"
        f"Token: {token}\n\n"
        f"The token works once and expires in {_minutes(ttl_seconds)}. Resetting your password "
        "signs you out everywhere. If you did not ask for this, ignore this mail: your password "
        "stays as it is." + _FOOTER
    )
    return MailMessage(to, "Reset your password", text, MailKind.PASSWORD_RESET)


def password_changed(to: str, *, reset: bool) -> MailMessage:
    how = "reset with a token sent to this address" if reset else "changed"
    text = (
        f"The password of your account was just {how}.\n\n"
        "If this was you, nothing more to do. If it was not, reset your password now and "
        "review your account's security events.\n"
    )
    return MailMessage(to, "Your password was changed", text, MailKind.PASSWORD_CHANGED)


def email_change_requested(to: str) -> MailMessage:
    text = (
        "A change of your account's email address was requested. It takes effect only when "
        "the new address is confirmed.\n\n"
        "If this was not you, change your password now.\n"
    )
    return MailMessage(to, "Email change requested", text, MailKind.EMAIL_CHANGE_REQUESTED)


def email_changed(to: str) -> MailMessage:
    text = (
        "The email address of your account was changed; mails now go to the new address.\n\n"
        "If this was not you, contact your administrator at once.\n"
    )
    return MailMessage(to, "Your email address was changed", text, MailKind.EMAIL_CHANGED)
