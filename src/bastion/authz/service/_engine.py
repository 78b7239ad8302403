"""The seam between the service and the engine and model packages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bastion.authz.engine import Engine
from bastion.authz.model import validate_model as _validate

__all__ = ["Engine", "compile_model", "validate_model"]


def compile_model(model: Mapping[str, Any]) -> Engine:
    """The model compiled once (a version is immutable, so the result never goes stale)."""
    return Engine(model)


def validate_model(model: Mapping[str, Any]) -> None:
    """Raises ValidationError (``ModelValidationError``) for a model OpenFGA would refuse,
    then compiles it (the engine refuses what it cannot evaluate)."""
    _validate(model)
    Engine(model)
