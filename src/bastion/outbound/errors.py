"""Errors of the outbound HTTP client.

    BastionError
    └── OutboundError                  502 outbound_error
        ├── DestinationRefused         502 outbound_destination_refused  (URL or address refused)
        ├── ResolutionFailed           502 outbound_resolution_failed    (the name did not resolve)
        ├── OutboundTimeout            504 outbound_timeout              (a time limit was reached)
        ├── ResponseTooLarge           502 outbound_response_too_large   (over max_response_bytes)
        ├── TooManyRedirects           502 outbound_too_many_redirects   (off, or too many)
        └── OutboundTransportFailed    502 outbound_transport_failed     (connect, TLS, protocol)

Every error carries a ``reason`` (a short stable word: ``loopback``, ``userinfo``,
``ambiguous_ipv4``...) for logs and audit details. None of them reaches an HTTP client of Bastion
as such: they are 5xx errors, masked as ``internal_error`` unless a caller maps them.
"""

from __future__ import annotations

from bastion.errors import BastionError


class OutboundError(BastionError):
    code = "outbound_error"
    status = 502
    title = "An outbound request failed"

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


class DestinationRefused(OutboundError):
    code = "outbound_destination_refused"
    title = "The destination is not allowed"


class ResolutionFailed(OutboundError):
    code = "outbound_resolution_failed"
    title = "The destination name did not resolve"


class OutboundTimeout(OutboundError):
    code = "outbound_timeout"
    status = 504
    title = "The outbound request timed out"


class ResponseTooLarge(OutboundError):
    code = "outbound_response_too_large"
    title = "The response is larger than allowed"


class TooManyRedirects(OutboundError):
    code = "outbound_too_many_redirects"
    title = "The destination redirected more than allowed"


class OutboundTransportFailed(OutboundError):
    code = "outbound_transport_failed"
    title = "The connection to the destination failed"
