"""Errors of the monitoring package.

    BastionError
    └── MonitoringError              500 monitoring_error
        └── DeadLetterStoreFailed    500 dead_letter_store_failed  (the database refused a row)

Delivery failures are not errors: they are retried, then dead-lettered. The receiver-side
signature error is :class:`bastion.sdk.webhooks.WebhookVerificationFailed`.
"""

from __future__ import annotations

from bastion.errors import BastionError


class MonitoringError(BastionError):
    code = "monitoring_error"
    status = 500
    title = "Monitoring error"


class DeadLetterStoreFailed(MonitoringError):
    code = "dead_letter_store_failed"
    title = "A dead-letter record could not be stored"
