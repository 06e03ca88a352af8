"""Operations endpoints in-process: ``/metrics`` after some traffic, ``/readyz``, the request id,
and CORS with the allowed origins (``web.metrics``, ``web.readiness``, ``web.request_id``)."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scoreboard import logs
from scoreboard.errors import Unavailable
from tests.api.conftest import UPDATE, Api, ApiFactory, assert_error
from tests.support.tokens import token


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, tuple(sorted(labels.items())))]


async def test_metrics_count_outcomes_latency_batches_board_changes_and_limits(
    make_api: ApiFactory,
) -> None:
    async with make_api(rate_limit_user="2/minute", rate_limit_ip=None) as api:
        await api.ok("alice", 5)
        await api.ok("alice", 5)
        assert_error(await api.update("alice", 5), 429)
        assert_error(await api.update("bob", 0), 400)
        body = {"user_id": "bob", "score_delta": 1, "auth_token": token("mallory")}
        assert_error(await api.client.post(UPDATE, json=body), 401)
        await asyncio.sleep(0)  # one loop turn: board changes are counted by the fan-out
        response = await api.client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
    assert value(text, "scoreboard_updates_total", outcome="accepted") == 2
    assert value(text, "scoreboard_updates_total", outcome="rate_limited_user") == 1
    assert value(text, "scoreboard_updates_total", outcome="invalid_score_delta") == 1
    assert value(text, "scoreboard_updates_total", outcome="wrong_user") == 1
    assert value(text, "scoreboard_update_seconds_count") == 5
    assert value(text, "scoreboard_commit_batch_size_sum") == 2
    assert 1 <= value(text, "scoreboard_commit_batch_size_count") <= 2
    assert value(text, "scoreboard_board_changes_total") == 2
    assert value(text, "scoreboard_rate_limited_total", limit="user") == 1
    assert value(text, "scoreboard_rate_limited_total", limit="velocity") == 0
    assert value(text, "scoreboard_websocket_connections") == 0
    assert value(text, "scoreboard_backend_errors_total", backend="database") == 0
    for name in (
        "scoreboard_broadcast_delivery_seconds_count",
        "scoreboard_websocket_closed_total",
        "scoreboard_websocket_refused_total",
    ):
        assert any(key[0] == name for key in samples(text)), name


async def test_an_adapter_error_line_counts_as_a_backend_error(api: Api) -> None:
    logging.getLogger("scoreboard.adapters.sqlite_store").error("sqlite commit failed: disk I/O")
    logging.getLogger("scoreboard.adapters.redis_bus").warning("board event 3 not published")
    logging.getLogger("scoreboard.adapters.sqlite_store").info("not an error")
    text = (await api.client.get("/metrics")).text
    assert value(text, "scoreboard_backend_errors_total", backend="database") == 1
    assert value(text, "scoreboard_backend_errors_total", backend="redis") == 1


async def test_readyz_is_200_when_the_store_and_index_answer(api: Api) -> None:
    response = await api.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "index": "ok"}}
    assert (await api.client.get("/healthz")).status_code == 200


async def test_readyz_is_503_when_the_store_does_not_answer(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down() -> Any:
        raise Unavailable("the score store is unavailable")

    monkeypatch.setattr(api.app.state.components.store, "config_version", down)
    response = await api.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "failed", "index": "ok"}
    text = (await api.client.get("/metrics")).text
    assert value(text, "scoreboard_backend_errors_total", backend="database") == 1


async def test_a_request_id_is_echoed_or_made(api: Api) -> None:
    given = await api.client.get("/api/scores/top10", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await api.client.get("/api/scores/top10")
    other = await api.client.get("/api/scores/top10")
    made_id = made.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", made_id), made_id  # process prefix-counter
    assert made_id != other.headers["x-request-id"]
    # Not a safe id (spaces, a newline would forge a log line): replaced.
    odd = await api.client.get("/api/scores/top10", headers={"X-Request-ID": "a b"})
    assert odd.headers["x-request-id"] != "a b"
    assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", odd.headers["x-request-id"])
    error = await api.client.post(UPDATE, content=b"{", headers={"X-Request-ID": "on-errors"})
    assert_error(error, 400)
    assert error.headers["x-request-id"] == "on-errors"


async def test_the_audit_line_carries_the_request_id_and_never_the_token(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(logs.RequestIdFilter())
    forged = token("mallory")
    with caplog.at_level(logging.WARNING, logger="scoreboard.audit"):
        response = await api.client.post(
            UPDATE,
            json={"user_id": "alice", "score_delta": 1, "auth_token": forged},
            headers={"X-Request-ID": "audit-7"},
        )
    assert_error(response, 401)
    (line,) = [r for r in caplog.records if r.name == "scoreboard.audit"]
    assert line.__dict__["request_id"] == "audit-7"
    assert line.__dict__["reason"] == "wrong_user"
    assert line.__dict__["client"] == "127.0.0.1"
    assert forged not in caplog.text


async def test_cors_allows_any_origin_by_default(api: Api) -> None:
    response = await api.client.options(
        UPDATE,
        headers={
            "Origin": "https://anyone.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    got = await api.client.get("/api/scores/top10", headers={"Origin": "https://x.example"})
    assert got.headers["access-control-allow-origin"] == "*"


async def test_cors_answers_only_the_allowed_origins(make_api: ApiFactory) -> None:
    async with make_api(allowed_origins="https://good.example, https://also.example/") as api:
        good = await api.client.get("/api/scores/top10", headers={"Origin": "https://good.example"})
        assert good.headers["access-control-allow-origin"] == "https://good.example"
        evil = await api.client.get("/api/scores/top10", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in evil.headers
        preflight = await api.client.options(
            UPDATE,
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert_error(preflight, 400)  # the service's JSON error body, like every refusal
        assert preflight.json()["error"] == "cors_refused"
        assert "access-control-allow-origin" not in preflight.headers
