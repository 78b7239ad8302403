"""The root of Bastion's error tree.

Every package draws its own tree under :class:`BastionError` in its ``errors.py``; each error
carries a stable ``code`` (recorded by the audit log, returned in problem+json bodies) and the
HTTP ``status`` the web layer answers with. The message of an error is written for the client:
it must never contain secrets, SQL, file paths or another exception's text.

    BastionError
    ├── config.errors.ConfigError            (startup; never reaches a client)
    ├── http.errors.HttpError                 (4xx answers of the hardened HTTP core)
    ├── storage.errors.StorageError
    ├── audit.errors.AuditError
    ├── identity.errors.IdentityError
    └── protections.ratelimit.errors.ProtectionError
"""

from __future__ import annotations

from typing import ClassVar


class BastionError(Exception):
    """Base of every error Bastion raises on purpose."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"
    #: A 5xx error is shown to clients as a plain ``internal_error`` unless it is meant for them
    #: (overload, unavailability): its code could reveal internals (storage, crypto, keys).
    expose: ClassVar[bool] = False

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.title
        super().__init__(self.detail)
