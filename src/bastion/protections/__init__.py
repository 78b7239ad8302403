"""API protections: rate limits, failure backoff and overload shedding.

The rate limiting library lives in :mod:`bastion.protections.ratelimit`.
"""
