"""The authz error tree maps to OpenFGA's codes consistently."""

from __future__ import annotations

from bastion.authz import errors
from bastion.authz.errors import AuthzError, DslSyntaxError, ModelIssue, ModelValidationError


def _tree(cls: type[AuthzError]) -> list[type[AuthzError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += _tree(sub)
    return found


def test_one_numeric_code_per_name_and_the_gateway_status() -> None:
    numbers: dict[str, int] = {}
    for cls in _tree(AuthzError):
        assert numbers.setdefault(cls.code, cls.openfga_code) == cls.openfga_code, cls
        if 2000 <= cls.openfga_code < 3000:
            assert cls.status == 400, cls  # OpenFGA's gateway answers every 2xxx with 400
        if cls.openfga_code == 5002:
            assert cls.status == 404


def test_every_error_is_drawn_in_the_module_docstring() -> None:
    doc = errors.__doc__ or ""
    for cls in _tree(AuthzError):
        if cls.__module__ == errors.__name__:
            assert cls.__name__ in doc, cls


def test_syntax_and_model_errors_carry_their_details() -> None:
    error = DslSyntaxError("expected ':'", line=4, column=17, symbol="x")
    assert (error.line, error.column, error.symbol) == (4, 17, "x")
    assert "line 5, column 18" in error.detail
    issues = [ModelIssue("invalid-type", "`a` is not a valid type."), ModelIssue("x", "second")]
    model_error = ModelValidationError(issues)
    assert model_error.issues == tuple(issues)
    assert model_error.detail == "`a` is not a valid type.; second"
    assert model_error.code == "validation_error"
