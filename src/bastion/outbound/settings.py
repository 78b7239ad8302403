"""Settings of the outbound client (nested group ``outbound``: ``BASTION_OUTBOUND__ALLOW_HTTP``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

KiB = 1024


class OutboundSettings(BaseModel):
    """Where Bastion may send requests, and the limits on each one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allow_http: bool = Field(
        default=False,
        description="Allow plain http:// destinations (add port 80 to allowed_ports too).",
    )
    allowed_ports: list[int] = Field(default_factory=lambda: [443], min_length=1)
    allow_loopback_for_tests: bool = Field(
        default=False,
        description="TEST ONLY: let requests reach 127.0.0.0/8 and ::1 (refused in production).",
    )
    max_redirects: int = Field(
        default=0, ge=0, le=10, description="0: redirects are never followed."
    )
    max_response_bytes: int = Field(default=1024 * KiB, ge=KiB, le=64 * 1024 * KiB)
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    read_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    total_timeout_seconds: float = Field(
        default=20.0, gt=0, le=300, description="Whole exchange, redirects included."
    )
    resolve_timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @property
    def schemes(self) -> frozenset[str]:
        return frozenset({"https", "http"} if self.allow_http else {"https"})

    @property
    def ports(self) -> frozenset[int]:
        return frozenset(self.allowed_ports)
