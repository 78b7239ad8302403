"""Errors of the authorization domain, each mapped to OpenFGA's error codes.

    BastionError
    └── AuthzError                     500 internal_error                           4000
        ├── ValidationError            400 validation_error                         2000
        │   ├── ConditionError         400 validation_error                         2000
        │   │                              a condition that does not compile, a missing or
        │   │                              unconvertible parameter, an evaluation failure
        │   ├── DslSyntaxError         400 validation_error                         2000
        │   │                              a DSL text that does not parse (line, column)
        │   └── ModelValidationError   400 validation_error                         2000
        │                                  a model that breaks a semantic rule (``issues``)
        ├── ModelNotFound              400 authorization_model_not_found            2001
        ├── ResolutionTooComplex       400 authorization_model_resolution_too_complex 2002
        ├── TypeNotFound               400 type_not_found                           2021
        ├── RelationNotFound           400 relation_not_found                       2022
        ├── InvalidTuple               400 invalid_tuple                            2027
        ├── StoreNotFound              404 store_id_not_found                       5002
        │   (storage and API errors, owned by the store/api modules:)
        ├── InvalidWriteInput          400 invalid_write_input                      2003
        ├── DuplicateTupleInWrite      400 cannot_allow_duplicate_tuples_in_one_request 2004
        ├── InvalidContinuationToken   400 invalid_continuation_token               2007
        ├── WriteConflict              400 write_failed_due_to_invalid_input        2017
        │                                  a write of an existing tuple, a delete of a missing one
        ├── LatestModelNotFound        400 latest_authorization_model_not_found     2020
        ├── ExceededEntityLimit        400 exceeded_entity_limit                    2053
        └── AuthorizationUnavailable   503 authorization_unavailable   (sdk: no decision)

``code`` is OpenFGA's error name, so the HTTP layer can answer OpenFGA's JSON error body
``{"code": error.code, "message": error.detail}`` unchanged; ``openfga_code`` is the numeric
value of the same enum (``ErrorCode`` / ``NotFoundErrorCode`` in OpenFGA's API), used by the
conformance suites. OpenFGA's gateway answers every 2xxx code with HTTP 400 and the 5xxx
not-found codes with 404. Messages describe the request only (names from the model or the
tuple), never internals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from bastion.errors import BastionError


class AuthzError(BastionError):
    """Base of every authorization error; ``openfga_code`` is OpenFGA's numeric error code."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Authorization error"
    openfga_code: ClassVar[int] = 4000


class ValidationError(AuthzError):
    code = "validation_error"
    status = 400
    title = "Invalid authorization request"
    openfga_code = 2000


class ConditionError(ValidationError):
    """A condition cannot be compiled or evaluated; never turned into a silent deny."""

    title = "Condition error"


@dataclass(frozen=True, slots=True)
class ModelIssue:
    """One problem found in a model, in the terms of OpenFGA's language tooling.

    ``kind`` is OpenFGA's ``errorType`` (``missing-definition``, ``relation-no-entry-point``...);
    ``line`` and the columns are zero-based positions in the DSL text when the model came from
    it (``None`` for a JSON model).
    """

    kind: str
    message: str
    symbol: str | None = None
    type_name: str | None = None
    relation: str | None = None
    line: int | None = None
    column: int | None = None
    column_end: int | None = None


class DslSyntaxError(ValidationError):
    """The DSL text does not parse; ``line`` and ``column`` are zero-based."""

    title = "Invalid authorization model syntax"

    def __init__(self, message: str, *, line: int, column: int, symbol: str = "") -> None:
        super().__init__(f"syntax error at line {line + 1}, column {column + 1}: {message}")
        self.message = message
        self.line = line
        self.column = column
        self.symbol = symbol


class ModelValidationError(ValidationError):
    """The model breaks one or more semantic rules; ``issues`` lists every one found."""

    title = "Invalid authorization model"

    def __init__(self, issues: Sequence[ModelIssue]) -> None:
        self.issues: tuple[ModelIssue, ...] = tuple(issues)
        detail = "; ".join(issue.message for issue in self.issues) or self.title
        super().__init__(detail)


class ModelNotFound(AuthzError):
    code = "authorization_model_not_found"
    status = 400
    title = "The authorization model was not found"
    openfga_code = 2001


class ResolutionTooComplex(AuthzError):
    """The resolution depth limit (25) was exceeded."""

    code = "authorization_model_resolution_too_complex"
    status = 400
    title = "Authorization model resolution required too many rewrite rules to be resolved"
    openfga_code = 2002


class TypeNotFound(AuthzError):
    code = "type_not_found"
    status = 400
    title = "The type is not defined in the authorization model"
    openfga_code = 2021


class RelationNotFound(AuthzError):
    code = "relation_not_found"
    status = 400
    title = "The relation is not defined on the type"
    openfga_code = 2022


class InvalidTuple(AuthzError):
    code = "invalid_tuple"
    status = 400
    title = "The tuple is invalid for the authorization model"
    openfga_code = 2027


class StoreNotFound(AuthzError):
    code = "store_id_not_found"
    status = 404
    title = "The store was not found"
    openfga_code = 5002


class InvalidWriteInput(AuthzError):
    code = "invalid_write_input"
    status = 400
    title = "Invalid input. Make sure you provide at least one write, or at least one delete"
    openfga_code = 2003


class DuplicateTupleInWrite(AuthzError):
    code = "cannot_allow_duplicate_tuples_in_one_request"
    status = 400
    title = "The same tuple appears twice in one write"
    openfga_code = 2004


class InvalidContinuationToken(AuthzError):
    code = "invalid_continuation_token"
    status = 400
    title = "Invalid continuation token"
    openfga_code = 2007


class WriteConflict(AuthzError):
    """A write of a tuple that exists or a delete of one that does not (without ``ignore``)."""

    code = "write_failed_due_to_invalid_input"
    status = 400
    title = "The tuple to be written already existed or the tuple to be deleted did not exist"
    openfga_code = 2017


class LatestModelNotFound(AuthzError):
    code = "latest_authorization_model_not_found"
    status = 400
    title = "The store has no authorization model"
    openfga_code = 2020


class ExceededEntityLimit(AuthzError):
    code = "exceeded_entity_limit"
    status = 400
    title = "Too many items in one request"
    openfga_code = 2053


class AuthorizationUnavailable(AuthzError):
    """The SDK could not get a decision (Bastion unreachable or answering an error): the
    request is refused, never let through."""

    code = "authorization_unavailable"
    status = 503
    title = "The authorization service is unavailable"
    expose = True
    openfga_code = 4000
