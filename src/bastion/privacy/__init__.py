"""Privacy: the data subject's rights over what Bastion holds about them.

* :mod:`bastion.privacy.export`: everything about one account as a JSON document (GDPR
  Art. 15 access and Art. 20 portability; CCPA right to know).
* :mod:`bastion.privacy.erasure`: the right to erasure (GDPR Art. 17; CCPA deletion), in one
  transaction.
* :mod:`bastion.privacy.settings_changes`: accountability for configuration changes (a
  keyed fingerprint of the effective settings compared at each start).

See ``docs/privacy.md``.
"""

from __future__ import annotations

from bastion.privacy.errors import AccountNotFound, LastAdministrator, PrivacyError
from bastion.privacy.services import PrivacyService

__all__ = ["AccountNotFound", "LastAdministrator", "PrivacyError", "PrivacyService"]
