"""Prometheus metrics of one process, served at ``GET /metrics`` (text exposition format).

Each app has its own registry (tests build many apps in one process). Every metric a dashboard
or an alert needs is listed in ``docs/operations.md``; the names below are the contract.

Label values are bounded: update outcomes are the error codes of this code base, limits and
socket reasons are fixed words. Neither a user id nor an address is ever a label.

Backend errors are counted from the adapters' own error lines (a log handler on
``scoreboard.adapters``), so the adapters stay free of any metrics library, plus the rate
limiter's storage errors and failed readiness probes, which this layer sees directly.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

# Adapter module -> the backend its error lines are about.
_BACKENDS = {
    "sqlite_store": "database",
    "postgres_store": "database",
    "redis_index": "redis",
    "redis_bus": "redis",
}


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.updates = Counter(
            "scoreboard_updates",
            "Score update requests by outcome: accepted, or the error code of the refusal.",
            ["outcome"],
            registry=registry,
        )
        self._accepted = self.updates.labels("accepted")  # the common case, looked up once
        self.update_seconds = Histogram(
            "scoreboard_update_seconds",
            "Time to answer POST /api/scores/update, any outcome.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.commit_batch_size = Histogram(
            "scoreboard_commit_batch_size",
            "Updates per store commit (group commit; SQLite store).",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.board_changes = Counter(
            "scoreboard_board_changes",
            "Top-10 changes this process has taken on (its own and other processes').",
            registry=registry,
        )
        self.ws_connections = Gauge(
            "scoreboard_websocket_connections",
            "Open /ws/scoreboard sockets in this process.",
            registry=registry,
        )
        self.ws_refused = Counter(
            "scoreboard_websocket_refused",
            "Sockets refused before accept: origin, unknown_board, process_cap, address_cap.",
            ["reason"],
            registry=registry,
        )
        self.ws_closed = Counter(
            "scoreboard_websocket_closed",
            "Sockets closed by the server: slow_consumer (send timeout), frame_flood, "
            "overflow (a /ws socket's events queue).",
            ["reason"],
            registry=registry,
        )
        self.broadcast_seconds = Histogram(
            "scoreboard_broadcast_delivery_seconds",
            "From a board change reaching this process's live board to it being written: one "
            "observation per fan-out (every socket that could take it at once), and one per "
            "socket whose writer had to wait for it to drain.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.rate_limited = Counter(
            "scoreboard_rate_limited",
            "Updates refused with 429, by limit: user, address, velocity.",
            ["limit"],
            registry=registry,
        )
        self.backend_errors = Counter(
            "scoreboard_backend_errors",
            "Errors talking to a backend: database, redis, rate_limit_storage.",
            ["backend"],
            registry=registry,
        )
        self.consistency_errors = Counter(
            "scoreboard_consistency_errors",
            "Differences between the derived state (standings, rank index) and the events, "
            "found by the background check (SCOREBOARD_CONSISTENCY_SAMPLE).",
            registry=registry,
        )
        self.webhook_attempts = Counter(
            "scoreboard_webhook_attempts",
            "Webhook delivery attempts by outcome: delivered (2xx), retrying (failed, tried "
            "again later), failed (given up after the retry window: its endpoint disabled).",
            ["outcome"],
            registry=registry,
        )
        # Every series exists from the start, so a rate() over it is defined before the first
        # event (an alert on "increase > 0" must not need a first occurrence to arm).
        self.updates.labels("accepted")
        for limit in ("user", "address", "velocity"):
            self.rate_limited.labels(limit)
        for reason in ("origin", "unknown_board", "process_cap", "address_cap"):
            self.ws_refused.labels(reason)
        for reason in ("slow_consumer", "frame_flood", "overflow"):
            self.ws_closed.labels(reason)
        for backend in ("database", "redis", "rate_limit_storage"):
            self.backend_errors.labels(backend)
        for outcome in ("delivered", "retrying", "failed"):
            self.webhook_attempts.labels(outcome)
        self.error_log = BackendErrorLog(self)

    # -- hooks for the rest of the app -------------------------------------------------------

    def update_done(self, outcome: str, started: float) -> None:
        """One answered update: ``outcome`` is ``accepted`` or the refusal's error code."""
        counter = self._accepted if outcome == "accepted" else self.updates.labels(outcome)
        counter.inc()
        self.update_seconds.observe(time.perf_counter() - started)

    def committed(self, batch_size: int) -> None:
        """The store's commit observer (called on its writer thread; prometheus is thread-safe)."""
        self.commit_batch_size.observe(batch_size)

    def webhook_attempted(self, outcome: str) -> None:
        self.webhook_attempts.labels(outcome).inc()

    def fanned_out(self, seconds: float, changes: int) -> None:
        """The live board's fan-out observer: ``changes`` board changes this process took on
        reached every socket that could take them at once, ``seconds`` after the oldest."""
        self.board_changes.inc(changes)
        self.broadcast_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class BackendErrorLog(logging.Handler):
    """Counts WARNING-and-above lines of the store and Redis adapters as backend errors."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(logging.WARNING)
        self._metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        backend = _BACKENDS.get(record.name.rpartition(".")[2])
        if backend is not None:
            self._metrics.backend_errors.labels(backend).inc()


def metrics_of(request: Request) -> Metrics:
    value: Metrics = request.app.state.metrics
    return value


async def metrics_endpoint(request: Request) -> Response:
    return Response(metrics_of(request).render(), media_type=CONTENT_TYPE_LATEST)
