"""Security monitoring: detectors on the audit event stream, alerts, and their delivery.

- :mod:`~bastion.monitoring.detectors`: brute force, credential stuffing, password spraying,
  refresh-token reuse, denial bursts, admin actions off hours, new device or network logins;
- :mod:`~bastion.monitoring.counters`: their sliding-window counters (memory, or Redis shared by
  every worker);
- :mod:`~bastion.monitoring.services`: the engine (an audit subscriber) and the dispatcher;
- :mod:`~bastion.monitoring.webhooks`: signed webhooks with retries and dead letters;
  :mod:`~bastion.monitoring.email`: operator alert mails and user sign-in notices (outbox);
- :mod:`~bastion.monitoring.metrics`: Prometheus series derived from the event stream;
- :mod:`~bastion.monitoring.wiring`: ``build_monitoring(settings, ...)``, the one place it is
  assembled.

Kept free of imports: :mod:`bastion.config.settings` imports the settings module.
"""
