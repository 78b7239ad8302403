"""The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers-11) and Retry-After.

``RateLimit-Policy`` lists each applied policy as a Structured Fields string item with its quota
``q`` and window ``w`` (seconds)::

    RateLimit-Policy: "login";q=10;w=60, "api-ip";q=600;w=60

``RateLimit`` gives the service limit now: ``r`` units remain, and ``t`` is the effective window
in seconds: until the bucket is full again for a policy that allowed the request, until the
request would be allowed for a policy that refused it::

    RateLimit: "login";r=0;t=6, "api-ip";r=599;t=1

For GCRA, ``q`` is the burst and ``w`` the time to refill it (``q / w`` is the sustained rate).
No partition key (``pk``) is sent: keys are derived from IPs and user ids (privacy, Section 9).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bastion.protections.ratelimit.errors import retry_after_seconds
from bastion.protections.ratelimit.gcra import Decision
from bastion.protections.ratelimit.policies import Policy

RATELIMIT_POLICY = b"ratelimit-policy"
RATELIMIT = b"ratelimit"
RETRY_AFTER = b"retry-after"


def policy_field(policies: Sequence[Policy]) -> str:
    return ", ".join(p.field_item for p in policies)


def limit_item(policy: Policy, decision: Decision) -> str:
    if decision.allowed:
        window = math.ceil(decision.reset_after)
    else:
        window = retry_after_seconds(decision.retry_after)
    return f'"{policy.name}";r={decision.remaining};t={window}'


def limit_field(results: Sequence[tuple[Policy, Decision]]) -> str:
    return ", ".join(limit_item(policy, decision) for policy, decision in results)


def retry_after(results: Sequence[tuple[Policy, Decision]]) -> int:
    """Seconds until every refusing policy would allow the request (Retry-After)."""
    waits = [d.retry_after for _, d in results if not d.allowed]
    return retry_after_seconds(max(waits, default=0.0))


def fields(
    results: Sequence[tuple[Policy, Decision]], *, refused: bool
) -> list[tuple[bytes, bytes]]:
    """The raw ASGI headers for ``results``; with ``Retry-After`` when the request is refused."""
    if not results:
        return []
    if len(results) == 1 and not refused:  # the common case: one policy, allowed
        policy, decision = results[0]
        # As limit_item() does, inlined on the policy's prebuilt bytes: hot path.
        window = math.ceil(decision.reset_after)
        return [
            (RATELIMIT_POLICY, policy.field_bytes),
            (RATELIMIT, b"%b%d;t=%d" % (policy.limit_prefix, decision.remaining, window)),
        ]
    headers = [
        (RATELIMIT_POLICY, policy_field([p for p, _ in results]).encode("ascii")),
        (RATELIMIT, limit_field(results).encode("ascii")),
    ]
    if refused:
        headers.append((RETRY_AFTER, str(retry_after(results)).encode("ascii")))
    return headers
