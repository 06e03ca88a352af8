"""Schemathesis against ``/openapi.json`` of a real server: for generated valid and invalid
requests to every documented operation, no 5xx, every status is documented, and every body
and content type matches the schema.

The checks are the conformance ones. ``positive_data_acceptance`` does not apply: a schema-valid
update still needs a valid token, which no generator can make (it is refused with a documented
401). The server runs with the default limits, so the documented 429 can occur too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, checks
from schemathesis.specs.openapi import checks as openapi_checks

from scoreboard.settings import Settings
from scoreboard.web.app import create_app
from tests.support.server import ServerProcess

EXAMPLES = 50

CHECKS = [
    checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def schema_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("schema"),
        env={
            # The defaults a public site gets, not the test suite's "off".
            "SCOREBOARD_RATE_LIMIT_USER": "60/minute",
            "SCOREBOARD_RATE_LIMIT_IP": "600/minute",
            "SCOREBOARD_VELOCITY_LIMIT": "10000",
        },
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_schema(schema_server: ServerProcess) -> schemathesis.BaseSchema:
    """The schema the running server publishes (not one built in this process)."""
    return schemathesis.openapi.from_url(schema_server.base_url + "/openapi.json")


# Operations whose schema leaves nothing to get wrong (no body, no constrained parameter):
# schemathesis cannot generate an invalid request for them.
NO_NEGATIVE = {"GET /api/scores/top10", "GET /api/users/{user_id}"}


def _cases() -> list[tuple[str, GenerationMode]]:
    # Collection needs the operations before any server runs: the app's own document lists
    # them; the test then takes each from the server's document by the same label.
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    operations = schemathesis.openapi.from_dict(app.openapi()).get_all_operations()
    labels = [result.ok().label for result in operations]
    assert "POST /api/scores/update" in labels
    return [(label, GenerationMode.POSITIVE) for label in labels] + [
        (label, GenerationMode.NEGATIVE) for label in labels if label not in NO_NEGATIVE
    ]


@pytest.mark.parametrize(("label", "mode"), _cases(), ids=str)
def test_every_operation_conforms_to_its_schema(
    api_schema: schemathesis.BaseSchema,
    schema_server: ServerProcess,
    label: str,
    mode: GenerationMode,
) -> None:
    (operation,) = [
        result.ok() for result in api_schema.get_all_operations() if result.ok().label == label
    ]
    session = requests.Session()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        case.call_and_validate(
            base_url=schema_server.base_url, session=session, checks=CHECKS, timeout=30
        )

    try:
        run()
    finally:
        session.close()
