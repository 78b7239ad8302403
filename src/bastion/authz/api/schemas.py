"""Request bodies of OpenFGA's HTTP API v1, with OpenFGA's field names and limits.

Unknown fields are refused (a typo must not silently drop a contextual tuple or a condition);
every string is bounded as OpenFGA bounds it, so nothing unbounded reaches the store or the
engine.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.authz.service import Consistency
from bastion.authz.store.ids import ULID_PATTERN

__all__ = [
    "BatchCheckBody",
    "CascadeDeleteBody",
    "CheckBody",
    "CreateStoreBody",
    "ExpandBody",
    "ListObjectsBody",
    "ListUsersBody",
    "ReadBody",
    "TupleKeyIn",
    "WriteBody",
    "WriteModelBody",
]

#: OpenFGA's limits (openfga/api validation rules).
OBJECT_PATTERN = r"^[^\s]{2,256}$"
RELATION_PATTERN = r"^[^:#@\s]{1,50}$"
USER_PATTERN = r"^[^\s]{2,512}$"
TYPE_PATTERN = r"^[^:#@\s]{1,254}$"
CONDITION_NAME_PATTERN = r"^[^\s]{2,256}$"
CORRELATION_ID_PATTERN = r"^[\w\d-]{1,36}$"
MAX_CONTEXTUAL_TUPLES = 100
MAX_BATCH_CHECKS = 50
MAX_USER_FILTERS = 1
MAX_TYPE_DEFINITIONS = 1000

#: OpenFGA clients send ``""`` for "the latest model" (the fga CLI does).
ModelId = Field(default=None, pattern=r"^$|" + ULID_PATTERN)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConditionIn(_Body):
    name: str = Field(pattern=CONDITION_NAME_PATTERN)
    context: dict[str, Any] | None = None


class TupleKeyIn(_Body):
    """A tuple to write, or a contextual tuple (OpenFGA's ``TupleKey``)."""

    user: str = Field(pattern=USER_PATTERN, max_length=512)
    relation: str = Field(pattern=RELATION_PATTERN)
    object: str = Field(pattern=OBJECT_PATTERN, max_length=256)
    condition: ConditionIn | None = None


class TupleKeyWithoutConditionIn(_Body):
    user: str = Field(pattern=USER_PATTERN, max_length=512)
    relation: str = Field(pattern=RELATION_PATTERN)
    object: str = Field(pattern=OBJECT_PATTERN, max_length=256)


class CheckTupleKeyIn(_Body):
    user: str = Field(pattern=USER_PATTERN, max_length=512)
    relation: str = Field(pattern=RELATION_PATTERN)
    object: str = Field(pattern=OBJECT_PATTERN, max_length=256)


class ContextualTuplesIn(_Body):
    # Go clients (the fga CLI) send ``null`` for an empty list.
    tuple_keys: list[TupleKeyIn] | None = Field(default=None, max_length=MAX_CONTEXTUAL_TUPLES)


class CreateStoreBody(_Body):
    name: str = Field(min_length=1, max_length=256)


class WriteModelBody(_Body):
    schema_version: str = Field(max_length=16)
    type_definitions: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_TYPE_DEFINITIONS)
    conditions: dict[str, Any] | None = None


class WritesIn(_Body):
    tuple_keys: list[TupleKeyIn] = Field(min_length=1)
    on_duplicate: Literal["error", "ignore", ""] = ""


class DeletesIn(_Body):
    tuple_keys: list[TupleKeyWithoutConditionIn] = Field(min_length=1)
    on_missing: Literal["error", "ignore", ""] = ""


class WriteBody(_Body):
    writes: WritesIn | None = None
    deletes: DeletesIn | None = None
    authorization_model_id: str | None = ModelId


class ReadTupleKeyIn(_Body):
    user: str | None = Field(default=None, max_length=512)
    relation: str | None = Field(default=None, max_length=50)
    object: str | None = Field(default=None, max_length=256)


class ReadBody(_Body):
    tuple_key: ReadTupleKeyIn | None = None
    page_size: int | None = Field(default=None, ge=1, le=100)
    continuation_token: str = Field(default="", max_length=512)
    consistency: Consistency = Consistency.UNSPECIFIED


class CheckBody(_Body):
    tuple_key: CheckTupleKeyIn
    contextual_tuples: ContextualTuplesIn | None = None
    authorization_model_id: str | None = ModelId
    trace: bool = False
    context: dict[str, Any] | None = None
    consistency: Consistency = Consistency.UNSPECIFIED


class BatchCheckItemIn(_Body):
    tuple_key: CheckTupleKeyIn
    contextual_tuples: ContextualTuplesIn | None = None
    context: dict[str, Any] | None = None
    correlation_id: str = Field(pattern=CORRELATION_ID_PATTERN)


class BatchCheckBody(_Body):
    checks: list[BatchCheckItemIn] = Field(min_length=1, max_length=MAX_BATCH_CHECKS)
    authorization_model_id: str | None = ModelId
    consistency: Consistency = Consistency.UNSPECIFIED


class ExpandTupleKeyIn(_Body):
    relation: str = Field(pattern=RELATION_PATTERN)
    object: str = Field(pattern=OBJECT_PATTERN, max_length=256)


class ExpandBody(_Body):
    tuple_key: ExpandTupleKeyIn
    authorization_model_id: str | None = ModelId
    consistency: Consistency = Consistency.UNSPECIFIED
    contextual_tuples: ContextualTuplesIn | None = None


class ListObjectsBody(_Body):
    authorization_model_id: str | None = ModelId
    type: str = Field(pattern=TYPE_PATTERN)
    relation: str = Field(pattern=RELATION_PATTERN)
    user: str = Field(pattern=USER_PATTERN, max_length=512)
    contextual_tuples: ContextualTuplesIn | None = None
    context: dict[str, Any] | None = None
    consistency: Consistency = Consistency.UNSPECIFIED


class FgaObjectIn(_Body):
    type: str = Field(pattern=TYPE_PATTERN)
    id: str = Field(min_length=1, max_length=256)


class UserTypeFilterIn(_Body):
    type: str = Field(pattern=TYPE_PATTERN)
    relation: str | None = Field(default=None, max_length=50)


class ListUsersBody(_Body):
    authorization_model_id: str | None = ModelId
    object: FgaObjectIn
    relation: str = Field(pattern=RELATION_PATTERN)
    user_filters: list[UserTypeFilterIn] = Field(min_length=1, max_length=MAX_USER_FILTERS)
    contextual_tuples: list[TupleKeyIn] | None = Field(
        default=None, max_length=MAX_CONTEXTUAL_TUPLES
    )
    context: dict[str, Any] | None = None
    consistency: Consistency = Consistency.UNSPECIFIED


class CascadeDeleteBody(_Body):
    """Bastion's extension: every tuple of an ``object`` (on it, or granting to it or to one of
    its usersets), or every tuple of exactly one ``user``. Exactly one of the two."""

    object: str | None = Field(default=None, pattern=OBJECT_PATTERN, max_length=256)
    user: str | None = Field(default=None, pattern=USER_PATTERN, max_length=512)
