"""Errors of the hardened HTTP core, each a problem+json answer with a stable code.

BastionError
└── HttpError
    ├── InvalidRequest           400 invalid_request
    │   ├── InvalidJson          400 json_invalid
    │   ├── JsonTooDeep          400 json_too_deep
    │   ├── JsonTooLarge         400 json_too_many_elements
    │   └── HostNotAllowed       400 host_not_allowed
    ├── NotAuthenticated         401 not_authenticated
    ├── Forbidden                403 forbidden
    │   └── CorsOriginDenied     403 cors_origin_denied
    ├── NotFound                 404 not_found
    ├── MethodNotAllowed         405 method_not_allowed
    ├── PayloadTooLarge          413 body_too_large
    ├── UnsupportedMediaType     415 unsupported_media_type
    ├── ValidationFailed         422 validation_failed
    └── InternalError            500 internal_error
"""

from __future__ import annotations

from bastion.errors import BastionError


class HttpError(BastionError):
    """An error answered directly by the HTTP core."""


class InvalidRequest(HttpError):
    code = "invalid_request"
    status = 400
    title = "Bad request"


class InvalidJson(InvalidRequest):
    code = "json_invalid"
    title = "The request body is not valid JSON"


class JsonTooDeep(InvalidRequest):
    code = "json_too_deep"
    title = "The JSON body is nested too deeply"


class JsonTooLarge(InvalidRequest):
    code = "json_too_many_elements"
    title = "The JSON body has too many elements"


class HostNotAllowed(InvalidRequest):
    code = "host_not_allowed"
    title = "The Host header is not an allowed host name"


class NotAuthenticated(HttpError):
    code = "not_authenticated"
    status = 401
    title = "Authentication required"


class Forbidden(HttpError):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class CorsOriginDenied(Forbidden):
    code = "cors_origin_denied"
    title = "Cross-origin request from an origin that is not allowed"


class NotFound(HttpError):
    code = "not_found"
    status = 404
    title = "Not found"


class MethodNotAllowed(HttpError):
    code = "method_not_allowed"
    status = 405
    title = "Method not allowed"


class PayloadTooLarge(HttpError):
    code = "body_too_large"
    status = 413
    title = "The request body is too large"


class UnsupportedMediaType(HttpError):
    code = "unsupported_media_type"
    status = 415
    title = "Unsupported media type"


class ValidationFailed(HttpError):
    code = "validation_failed"
    status = 422
    title = "The request failed validation"


class InternalError(HttpError):
    code = "internal_error"
    status = 500
    expose = True
    title = "Internal server error"
