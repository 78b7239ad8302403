"""SSRF-safe outbound HTTP (see :mod:`bastion.outbound.services`)."""

from __future__ import annotations

from bastion.outbound.addresses import refusal
from bastion.outbound.errors import (
    DestinationRefused,
    OutboundError,
    OutboundTimeout,
    OutboundTransportFailed,
    ResolutionFailed,
    ResponseTooLarge,
    TooManyRedirects,
)
from bastion.outbound.interfaces import Resolver
from bastion.outbound.resolvers import StubResolver, SystemResolver
from bastion.outbound.services import OutboundClient, OutboundResponse
from bastion.outbound.settings import OutboundSettings

__all__ = [
    "DestinationRefused",
    "OutboundClient",
    "OutboundError",
    "OutboundResponse",
    "OutboundSettings",
    "OutboundTimeout",
    "OutboundTransportFailed",
    "ResolutionFailed",
    "Resolver",
    "ResponseTooLarge",
    "StubResolver",
    "SystemResolver",
    "TooManyRedirects",
    "refusal",
]
