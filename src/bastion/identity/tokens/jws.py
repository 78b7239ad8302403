"""JWS Compact Serialization (RFC 7515) pinned to one asymmetric algorithm per key.

The dangerous parts of JWS are its options: ``alg`` chosen by the token (``none``, or ``HS256``
keyed with the verifier's *public* key: algorithm confusion), and keys named by the token
(``jwk``, ``jku``, ``x5u``, ``x5c``: the attacker supplies the key that verifies their own
signature). Here the *key* decides the algorithm, joserfc is given a registry that knows that
one algorithm only, and :func:`read_header` refuses every header member but ``alg``, ``kid``
and ``typ`` (``crit`` and ``b64`` included). JSON with duplicate member names is refused, so no
two parsers can read the same token differently.

Signing and signature checks are joserfc's (over pyca/cryptography); nothing here touches the
signature bytes. One exception, for speed: an Ed25519 key signs through libsodium (PyNaCl) once
checked, for that key, to give the very signature pyca's gives (Ed25519 is deterministic, RFC
8032 §5.1.6: one key signs a message to one signature in every correct implementation);
libsodium's field arithmetic takes about half of OpenSSL's instructions per signature.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws as _jws
from joserfc.errors import BadSignatureError, JoseError, UnsupportedAlgorithmError
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import guess_key
from joserfc.jws import CompactSignature, JWSRegistry
from joserfc.util import json_b64encode
from nacl.bindings import crypto_sign, crypto_sign_BYTES, crypto_sign_seed_keypair

from bastion.identity.tokens.errors import InvalidToken, InvalidTokenReason, SigningKeyError
from bastion.identity.tokens.keys import PublicKey, SigningAlgorithm, SigningKey

__all__ = [
    "ALLOWED_HEADER_MEMBERS",
    "MAX_TOKEN_CHARS",
    "read_header",
    "sign_compact",
    "strict_json",
    "verify_compact",
]

#: An access token is a few hundred bytes; refuse megabyte "tokens" before any parsing.
MAX_TOKEN_CHARS = 8 * 1024
ALLOWED_HEADER_MEMBERS = frozenset({"alg", "kid", "typ"})
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_MALFORMED = InvalidTokenReason.MALFORMED


class _PinnedRegistry(JWSRegistry):
    """A joserfc registry that knows exactly one algorithm."""

    def __init__(self, algorithm: SigningAlgorithm) -> None:
        super().__init__(algorithms=[algorithm.value], strict_check_header=True)
        self._model = JWSRegistry.algorithms[algorithm.value]

    def get_alg(self, name: str) -> JWSAlgModel:
        if name != self._model.name:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        # joserfc warns on the name "EdDSA" (RFC 9864: it does not fix the curve). Our EdDSA
        # keys are checked to be Ed25519 when loaded, which removes the ambiguity.
        return self._model


@functools.cache
def _registry(algorithm: SigningAlgorithm) -> _PinnedRegistry:
    return _PinnedRegistry(algorithm)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise InvalidToken(_MALFORMED)
    return result


def _reject_constant(_: str) -> Any:
    raise InvalidToken(_MALFORMED)  # NaN / Infinity are not JSON


def strict_json(data: bytes) -> Any:
    """Parse JSON, refusing duplicate member names and non-standard constants."""
    try:
        return json.loads(
            data, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidToken(_MALFORMED) from None


def _b64url(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken(_MALFORMED) from None


def read_header(token: str) -> dict[str, Any]:
    """The *unverified* protected header, after the shape checks: a string of three non-empty
    base64url segments within :data:`MAX_TOKEN_CHARS`, a JSON object header with no member
    outside :data:`ALLOWED_HEADER_MEMBERS`. Raises :class:`InvalidToken` otherwise."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken(_MALFORMED)
    segments = token.split(".")
    if len(segments) != 3 or not all(_SEGMENT.fullmatch(s) for s in segments):
        raise InvalidToken(_MALFORMED)  # includes a stripped (empty) signature
    header = strict_json(_b64url(segments[0]))
    if not isinstance(header, dict):
        raise InvalidToken(_MALFORMED)
    if not header.keys() <= ALLOWED_HEADER_MEMBERS:
        # jwk / jku / x5u / x5c: the token would choose its own verification key;
        # crit / b64: extensions we do not implement must not be half-honoured.
        raise InvalidToken(InvalidTokenReason.FORBIDDEN_HEADER)
    return header


class _Signer(NamedTuple):
    """What joserfc's ``serialize_compact`` works out from a header and a key before it signs:
    the checked header's encoded segment, and the signature function of the algorithm and key
    (``signing input -> signature``)."""

    source: Any  # the SigningKey's joserfc key this was prepared from
    header_segment: bytes
    sign: Callable[[bytes], bytes]


def _signature_function(algorithm: JWSAlgModel, key: Any) -> Callable[[bytes], bytes]:
    """``algorithm.sign(·, key)``. For EdDSA, joserfc's ``sign`` is the key's checked
    ``get_op_key("sign")`` (fixed for a key) then the native key's ``sign``: that native
    ``sign`` is returned, the checks done here once. Other algorithms sign through joserfc."""
    if algorithm.name == "EdDSA":
        native = key.get_op_key("sign")
        if isinstance(native, Ed25519PrivateKey):
            return _ed25519_signer(native)
        if isinstance(native, Ed448PrivateKey):
            sign: Callable[[bytes], bytes] = native.sign
            return sign
    return functools.partial(_algorithm_sign, algorithm, key)


#: Signed by both implementations before libsodium signs for a key (see _ed25519_signer).
_SELF_CHECK_MESSAGE = b"bastion: libsodium and pyca sign alike"


def _ed25519_signer(native: Ed25519PrivateKey) -> Callable[[bytes], bytes]:
    """``native.sign``, computed by libsodium: the same key (its 32-byte seed, RFC 8032
    §5.1.5), the same deterministic signature. Checked once here: libsodium's public key and
    its signature of a probe message must be pyca's, else pyca signs (never a different
    signature)."""
    public, secret = crypto_sign_seed_keypair(native.private_bytes_raw())

    def sign(message: bytes) -> bytes:
        return crypto_sign(message, secret)[:crypto_sign_BYTES]  # signature || message

    if public != native.public_key().public_bytes_raw() or sign(_SELF_CHECK_MESSAGE) != native.sign(
        _SELF_CHECK_MESSAGE
    ):  # a broken library build: pyca's signature stands
        native_sign: Callable[[bytes], bytes] = native.sign
        return native_sign
    return sign


def _algorithm_sign(algorithm: JWSAlgModel, key: Any, signing_input: bytes) -> bytes:
    signature: bytes = algorithm.sign(signing_input, key)
    return signature


#: Prepared signers by (kid, header): an access token's header is the same for every token a
#: key signs, so its checks and encoding are done once per key, not per token.
_SIGNERS: dict[tuple[str, tuple[tuple[str, Any], ...]], _Signer] = {}
_SIGNERS_MAX = 64


def _signer(header: dict[str, Any], key: SigningKey) -> _Signer | None:
    """The prepared signer of ``header`` and ``key``; None when the header is not a plain
    string map (joserfc then does everything, per call)."""
    if "b64" in header or not all(type(value) is str for value in header.values()):
        return None
    # By the header's members in their order: its encoded segment keeps that order.
    cache_key = (key.kid, tuple(header.items()))
    signer = _SIGNERS.get(cache_key)
    if signer is not None and signer.source is key.key:
        return signer
    # The same checks, in the same order, as joserfc's serialize_compact.
    registry = _registry(key.algorithm)
    registry.check_header(header)
    algorithm = registry.get_alg(header["alg"])
    jose_key = guess_key(key.key, CompactSignature(header, b""), True, use="sig")
    algorithm.check_key(jose_key)
    if len(_SIGNERS) >= _SIGNERS_MAX:
        _SIGNERS.clear()
    sign = _signature_function(algorithm, jose_key)
    signer = _SIGNERS[cache_key] = _Signer(key.key, json_b64encode(header), sign)
    return signer


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64url_encode(data: bytes) -> bytes:
    """joserfc's ``urlsafe_b64encode`` (``base64.urlsafe_b64encode`` less its padding) in one
    frame: the standard alphabet's ``+/`` as ``-_``, no ``=``."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


def sign_compact(header: dict[str, Any], payload: bytes, key: SigningKey) -> str:
    """Sign ``payload`` with ``key``; ``header["alg"]`` must be the key's algorithm. The same
    token as joserfc's ``serialize_compact``, whose header checks and encoding run once per key
    and header (the signature is joserfc's algorithm's, per token)."""
    if header.get("alg") != key.algorithm.value:
        raise SigningKeyError("The header algorithm must be the signing key's algorithm.")
    signer = _signer(header, key)
    if signer is None:
        return _jws.serialize_compact(header, payload, key.key, registry=_registry(key.algorithm))
    signing_input = signer.header_segment + b"." + _b64url_encode(payload)
    signature = _b64url_encode(signer.sign(signing_input))
    return (signing_input + b"." + signature).decode("ascii")


def verify_compact(token: str, key: SigningKey | PublicKey) -> bytes:
    """Check ``token``'s signature with ``key`` under ``key``'s algorithm only; return the
    payload. Raises :class:`InvalidToken` (``bad_signature`` or ``malformed``)."""
    try:
        obj = _jws.deserialize_compact(token, key.key, registry=_registry(key.algorithm))
    except BadSignatureError:
        raise InvalidToken(InvalidTokenReason.BAD_SIGNATURE) from None
    except UnsupportedAlgorithmError:
        raise InvalidToken(InvalidTokenReason.ALGORITHM_NOT_ALLOWED) from None
    except (JoseError, ValueError, TypeError, KeyError, UnicodeError, binascii.Error):
        raise InvalidToken(_MALFORMED) from None
    if obj.payload is None:
        raise InvalidToken(_MALFORMED)
    return obj.payload
