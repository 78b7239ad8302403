"""Authorization models: OpenFGA's DSL and JSON (schema 1.1), printing and validation.

    parse_dsl(text) -> model            # the API JSON form; DslSyntaxError with line/column
    render_dsl(model) -> text           # canonical DSL; parse_dsl(render_dsl(m)) == m
    validate_model(model) -> None       # ModelValidationError: what OpenFGA's server refuses
    validate_dsl(text) -> model         # parse + validate by OpenFGA's language rules (or,
                                        # language=False, its server's), issues located in text

A model is a plain ``dict`` in OpenFGA's API JSON form (``schema_version``,
``type_definitions``, ``conditions``), as stored and as served by the HTTP API.
"""

from bastion.authz.model._locate import validate_dsl
from bastion.authz.model._parse import parse_dsl
from bastion.authz.model._render import render_dsl
from bastion.authz.model._validate import SCHEMA_VERSION, model_issues, validate_model

__all__ = [
    "SCHEMA_VERSION",
    "model_issues",
    "parse_dsl",
    "render_dsl",
    "validate_dsl",
    "validate_model",
]
