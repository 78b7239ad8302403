"""Property-based API testing over the OpenAPI document of a real running server.

Each operation gets a bounded number of generated requests (valid and invalid); the server must
answer none of them with a 5xx, and every answer must conform to the documented schema.
(schemathesis' pytest plugin does not run under this pytest, so the operations are driven through
its Python API with hypothesis directly.)
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from tests.common.server import LiveServer

MAX_EXAMPLES = 30
#: Schema-valid requests a server may still refuse: a schema promises which requests are well
#: formed, not which setup, reset or verification tokens exist (400 ``*_token_invalid``) nor
#: which passwords the policy accepts (422 ``password_rejected``). 5xx stays a failure
#: (``not_a_server_error``).
SEMANTIC_REFUSALS = ["400", "422"]


def test_api_conforms_and_never_fails(live_server: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(f"{live_server.url}/openapi.json")
    accepted = schema.config.checks.positive_data_acceptance
    accepted.expected_statuses = [*accepted.expected_statuses, *SEMANTIC_REFUSALS]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 2, "the schema lists no operations: nothing would be tested"
    calls = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            nonlocal calls
            response = case.call()
            calls += 1
            assert response.status_code < 500, (case.method, case.path, response.text)
            case.validate_response(response)

        check()
    assert calls >= len(operations)
