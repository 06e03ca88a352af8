"""Schemathesis against ``/openapi.json`` of a real server, as an outside tester would run it:
every check, in every phase.

``schemathesis run`` (its command line, so that this run and anyone else's are the same thing)
with tests/api/schemathesis.toml: the examples phase (the document's examples), coverage
(boundary and invalid values of every constraint, unexpected methods), fuzzing (generated valid
and invalid requests) and stateful (sequences that follow the document's links, e.g. an update
then the reads about its user). Every check runs, among them:

- ``positive_data_acceptance``: a request the document calls valid is not refused (400);
- ``negative_data_rejection``: a request it calls invalid is refused;
- no 5xx, every status and header documented, every body and content type as documented,
  405 with ``Allow`` for an undocumented method, a link's target answering what it links to.

Valid updates carry real tokens, signed with the test server's secret for the user each body
names (tests/api/schemathesis_hooks.py), so a 401 on valid data is a failure too. The one check
that cannot apply is ``object_level_authorization``: it needs two identities whose objects the
other must not read, and every read here is public by design.

The server runs with its limits off: every request comes from one address and the generator
reuses a few user ids, so the limits would answer 429 before the update's own rules are reached
(Schemathesis then warns "rate limited", which fails this test). The 429 and its headers are
held to the document in tests/api/test_openapi.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ServerProcess
from tests.support.timing import scaled

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
CONFIG = HERE / "schemathesis.toml"
SEED = 1
PHASES = ("examples", "coverage", "fuzzing", "stateful")
EXCLUDED = "^/api/admin/webhooks"
"""Paths left out of the run (see the command in ``run``)."""


@pytest.fixture(scope="module")
def schema_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # 127.0.0.1 allowed: the run's own webhook (schemathesis_hooks.py) points there.
    server = ServerProcess(
        tmp_path_factory.mktemp("schema"), {"SCOREBOARD_WEBHOOK_ALLOW_HOSTS": "127.0.0.1"}
    )
    server.data_dir.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(
        [sys.executable, "-m", "scoreboard", "admin-key", "create", "schemathesis"],
        cwd=server.data_dir,
        env=server.env(),
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=True,
    )
    server.admin_key = made.stdout.strip()  # type: ignore[attr-defined]
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def run(schema_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The run's JSON report, with its console output under ``"output"``."""
    folder = tmp_path_factory.mktemp("schemathesis")
    report = folder / "report.json"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        f"{schema_server.base_url}/openapi.json",
        "--checks",
        "all",
        "--seed",
        str(SEED),
        "--max-response-time",
        str(scaled(5)),
        "--report",
        "json",
        "--report-json-path",
        str(report),
        # The webhook routes are left to tests/api/test_webhooks.py (40 tests against a real
        # receiver, bad bodies and SSRF refusals included): with them in the document, the
        # stateful phase followed 1 of its 47 links and left 14 user and admin routes untested
        # (not understood yet; see the issue 15 closing note).
        "--exclude-path-regex",
        EXCLUDED,
    ]
    finished = subprocess.run(
        command,
        cwd=folder,  # anything it writes stays out of the work tree
        env={
            **_environment(),
            "PYTHONPATH": str(ROOT),
            "SCOREBOARD_TEST_ADMIN_KEY": schema_server.admin_key,  # type: ignore[attr-defined]
        },
        capture_output=True,
        text=True,
        timeout=scaled(300),
        check=False,
    )
    result: dict[str, Any] = json.loads(report.read_text()) if report.exists() else {}
    result["output"] = finished.stdout + finished.stderr
    result["returncode"] = finished.returncode
    with urllib.request.urlopen(f"{schema_server.base_url}/openapi.json") as answer:
        paths = json.load(answer)["paths"]
    result["excluded"] = sum(
        1
        for path, item in paths.items()
        if re.match(EXCLUDED, path)
        for method in item
        if method in ("get", "put", "post", "delete", "patch", "head", "options")
    )
    return result


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SCHEMATHESIS_")}


def test_schemathesis_finds_nothing(run: dict[str, Any]) -> None:
    assert run["returncode"] == 0, run["output"]
    assert run["failures"] == [], run["output"]
    assert run["errors"] == [], run["output"]


def test_every_phase_ran_on_every_operation(run: dict[str, Any]) -> None:
    assert run["complete"], run["output"]
    for phase in PHASES:
        assert run["phases"][phase]["status"] == "success", (phase, run["output"])
    operations = run["operations"]
    assert run["excluded"] == 7  # the webhook routes, and nothing else
    assert operations["tested"] == operations["total"] - run["excluded"] >= 6, run["output"]


def test_no_warning_says_part_of_the_api_went_untested(run: dict[str, Any]) -> None:
    """Rate limited, missing test data, missing auth, a pattern it could not use, ... each means
    some rule was not exercised."""
    warnings = {kind: labels for kind, labels in run["warnings"].items() if labels}
    # One known exception: an adjustment of a user who does not exist is a 404 by contract,
    # and a generated user id names an existing user only by chance, so the fuzzer reports
    # "missing test data" for it (per-operation warning settings do not silence this one).
    # Accepted adjustments are tested in tests/api/test_admin.py.
    adjust = "POST /api/admin/users/{user_id}/adjust"
    if warnings.get("missing_test_data") == [adjust]:
        del warnings["missing_test_data"]
    # A second: a webhook's URL must be https to a public address (or an allowed host), which a
    # schema-valid string is only by chance, so most valid registrations are refused (400) and
    # the fuzzer reports "validation mismatch" for it (the document cannot say "a public
    # address"). Accepted registrations are tested in tests/api/test_webhooks.py.
    create = "POST /api/admin/webhooks"
    if warnings.get("validation_mismatch") == [create]:
        del warnings["validation_mismatch"]
    assert warnings == {}, run["output"]


def test_valid_updates_were_accepted_so_the_tokens_are_real(run: dict[str, Any]) -> None:
    """Without this, a broken token supply would look like a server that refuses everything
    with a documented 401, and the update's rules would go untested."""
    rates = run["valid_rates"]["POST /api/scores/update"]
    assert rates["examples"]["accepted"] >= 1, rates
    assert rates["fuzzing"]["accepted"] >= 10, rates
    assert all(rate["rejected"] == 0 for rate in rates.values()), rates
