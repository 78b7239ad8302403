"""A bounded per-process cache of *successful* access-token signature checks.

A client sends the same access token with every request of its 5-minute life, and checking an
Ed25519 signature costs about as much as the rest of a small request. Like Envoy's
``jwt_authn`` ``jwt_cache_config``, :func:`~bastion.identity.tokens.access.verify_access_token_with`
remembers, per token, the claims its signature check produced, and on a later sight of the very
same token skips **only the signature check**. Everything else runs on every use, as without the
cache: the shape and header checks (algorithm pinning, ``typ``, ``kid``), the key lookup (a kid
no longer in the key store is refused), the key's algorithm, and every claim test (``iss``,
``aud``, ``exp``, ``nbf``, ``iat`` with the leeway, against the injected clock). The session
revocation check that callers run after verification is untouched.

Safeguards:

* **Key: SHA-256 of the whole compact token** (header, payload *and* signature). Any change to
  any byte, a flipped signature bit included, is another key: a cache miss, a full verification.
  A digest rather than the token string itself: 32 bytes per entry instead of a few hundred, the
  cache holds no usable bearer credential (a heap dump of it replays nothing), and dictionary
  comparisons run on digests, never on attacker-chosen prefixes of a cached token. Never a
  prefix, never the ``jti`` (a forged token may carry a valid token's ``jti``).
* **Entries are tied to the key object that verified them.** A hit needs the key the store
  returns *now* for the token's kid to be that same object (``is``): a key removed from the key
  store (past its grace, keyring reload without it) is not found, and one replaced under its kid
  (a reload that unsealed it again, a refreshed JWK Set in :mod:`bastion.sdk.auth`) is another
  object, so its tokens are verified again in full. The entry holds a reference to the key, so
  an identity is never reused by another object while the entry lives. :meth:`clear` also
  empties the cache outright.
* **Only successes enter**, after the signature *and* the claims passed; a refused token never
  does, so a flood of bad tokens costs the full check each and cannot evict anything good.
* **Bounded**: at most ``max_entries`` tokens (oldest evicted first), and an entry is dropped at
  ``exp + leeway``, when verification would refuse its token anyway (expired entries at the old
  end are purged on insertion, and a hit on one removes it). An entry is a 32-byte digest, a
  reference to the key and the payload's parsed claims: about 1.2 KB, some 5 MB per process at
  the default 4,096.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULT_ENTRIES", "MAX_ENTRIES", "SignatureCache", "token_digest"]

#: Default bound: a worker's concurrently active clients for one access-token lifetime.
DEFAULT_ENTRIES = 4096
#: The largest bound a setting may ask for (~100 MB): beyond it the cache is a memory hazard.
MAX_ENTRIES = 65_536

#: digest -> (the verifying key object, the verified payload's claims, drop at (epoch seconds))
_Entry = tuple[object, Mapping[str, Any], int]


def token_digest(token: str) -> bytes:
    """The cache key of ``token``: SHA-256 of its exact characters."""
    # surrogatepass: a lone surrogate cannot pass read_header's shape check, but the digest
    # must never raise for any str.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class SignatureCache:
    """Verified tokens' claims by token digest, bound to the verifying key (see the module)."""

    __slots__ = ("_entries", "max_entries")

    def __init__(self, max_entries: int = DEFAULT_ENTRIES) -> None:
        if not 1 <= max_entries <= MAX_ENTRIES:
            raise ValueError(f"max_entries must be between 1 and {MAX_ENTRIES}")
        self.max_entries = max_entries
        # A dict keeps insertion order: the first entry is the oldest.
        self._entries: dict[bytes, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes, key: object, now: int) -> Mapping[str, Any] | None:
        """The claims remembered for ``digest`` when ``key`` is the very object that verified
        them and ``now`` is before the entry's drop time; None otherwise (and a stale or
        mismatched entry is forgotten)."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        verified_by, claims, drop_at = entry
        if verified_by is not key or now >= drop_at:
            del self._entries[digest]
            return None
        return claims

    def put(
        self, digest: bytes, key: object, claims: Mapping[str, Any], drop_at: int, now: int
    ) -> None:
        """Remember a successful verification of the token with ``digest`` by ``key`` until
        ``drop_at`` (epoch seconds: the token's ``exp`` plus the leeway)."""
        entries = self._entries
        entries.pop(digest, None)  # re-inserted at the young end
        # Purge expired entries from the old end (tokens share one lifetime, so insertion
        # order is nearly expiry order), then evict the oldest beyond the bound.
        while entries:
            oldest = next(iter(entries))
            if entries[oldest][2] > now and len(entries) < self.max_entries:
                break
            del entries[oldest]
        # Member names interned: every entry shares one copy of "iss", "aud", ... (a third of
        # an entry's size otherwise). The values stay the payload's own.
        compact = {sys.intern(name): value for name, value in claims.items()}
        entries[digest] = (key, compact, drop_at)

    def clear(self) -> None:
        """Forget every entry (the next use of each token is verified in full)."""
        self._entries.clear()
