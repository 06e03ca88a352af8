"""``deploy/nginx.conf`` in front of two scaled workers, over real TLS (issue 18).

Once for the module: a fresh PostgreSQL database, a Redis key prefix of its own, two real
``scoreboard serve`` processes on them, and the real nginx running the example file (only its
ports and certificate paths replaced: ``tests.support.nginx``) with a certificate made by
``openssl``. The workers trust nginx's address, 127.0.0.1, and nothing else.

"Outside" is a client whose source address is another loopback address, so that nginx, and
through its ``X-Forwarded-For`` the workers, see a peer other than 127.0.0.1; "inside" connects
from 127.0.0.1, the machine nginx runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection

from scoreboard.settings import Settings
from tests.support import services
from tests.support.nginx import EXAMPLE, Nginx, nginx_binary
from tests.support.server import ServerProcess, free_port
from tests.support.timing import async_wait_until, scaled
from tests.support.tokens import token

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

INSIDE = "127.0.0.1"
OUTSIDE = "127.0.0.2"
ADDRESS_LIMIT = 30
"""Update requests per minute per client address: small, so a test can reach it quickly."""


def require_nginx() -> str:
    binary = nginx_binary()
    if binary is None:
        services.unavailable("nginx is not installed (apt-get install nginx)")
    assert binary is not None
    if shutil.which("openssl") is None:
        services.unavailable("openssl is not installed (apt-get install openssl)")
    return binary


@dataclass
class Stack:
    nginx: Nginx
    workers: list[ServerProcess]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binary = require_nginx()
    root = tmp_path_factory.mktemp("deploy")
    redis_url = services.redis_url(services.INTEGRATION_REDIS_DB)
    prefix = services.unique_prefix()
    with services.postgres_database(migrate=False) as database_url:
        env = {
            "SCOREBOARD_DATABASE_URL": database_url,
            "SCOREBOARD_REDIS_URL": redis_url,
            "SCOREBOARD_REDIS_PREFIX": prefix,
            # What deploy/scoreboard.env sets: nginx's address, and the address limit on.
            "SCOREBOARD_TRUSTED_PROXIES": INSIDE,
            "SCOREBOARD_RATE_LIMIT_IP": f"{ADDRESS_LIMIT}/minute",
            "SCOREBOARD_LOG_FORMAT": "json",
        }
        workers = [ServerProcess(root / name, env) for name in ("a", "b")]
        proxy = Nginx(binary, root / "nginx", [w.port for w in workers])
        try:
            # At the same moment, as systemd starts them: the migrations take turns.
            with ThreadPoolExecutor(2) as pool:
                for started in [pool.submit(w.start) for w in workers]:
                    started.result()
            proxy.start()
            yield Stack(proxy, workers)
        finally:
            proxy.stop()
            for worker in workers:
                worker.stop()
            asyncio.run(services.delete_keys(redis_url, prefix))


@contextlib.asynccontextmanager
async def client(stack: Stack, source: str) -> AsyncIterator[httpx.AsyncClient]:
    """An https client of nginx whose connections come from ``source``."""
    transport = httpx.AsyncHTTPTransport(local_address=source, verify=stack.nginx.ssl_context())
    async with httpx.AsyncClient(
        base_url=stack.nginx.https_url, transport=transport, timeout=scaled(10)
    ) as http:
        yield http


async def post(http: httpx.AsyncClient, user_id: str, delta: int, **headers: str) -> httpx.Response:
    body = {"user_id": user_id, "score_delta": delta, "auth_token": token(user_id)}
    return await http.post("/api/scores/update", json=body, headers=headers)


def accepted(worker: ServerProcess) -> float:
    """The worker's own count of accepted updates, read from it directly (not through nginx)."""
    text = httpx.get(worker.base_url + "/metrics", timeout=scaled(10)).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "scoreboard_updates_total" and sample.labels["outcome"] == "accepted":
                return sample.value
    return 0.0


def rejected_clients(worker: ServerProcess, skip: int) -> list[str]:
    """The ``client`` of every "update rejected" line after the first ``skip`` lines of the
    worker's log: the address the update's limits counted."""
    clients = []
    for line in worker.log().splitlines()[skip:]:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("message") == "update rejected":
                clients.append(str(entry["client"]))
    return clients


async def next_message(ws: ClientConnection, wanted: str) -> dict[str, Any]:
    """The next message of type ``wanted`` (skipping others), within the timeout."""
    async with asyncio.timeout(scaled(10)):
        while True:
            message: dict[str, Any] = json.loads(await ws.recv())
            if message["type"] == wanted:
                return message


def _json_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == code


# -- updates and reads over https ------------------------------------------------------------


async def test_updates_and_reads_pass_through_nginx_over_https_to_both_workers(
    stack: Stack,
) -> None:
    before = [accepted(w) for w in stack.workers]
    async with client(stack, OUTSIDE) as http:
        results = [await post(http, "alice", 10) for _ in range(4)]
        assert [r.status_code for r in results] == [200] * 4, results[-1].text
        assert [r.json()["new_score"] for r in results] == [10, 20, 30, 40]
        assert "max-age" in results[0].headers["strict-transport-security"]
        # The read may reach the other worker, whose board follows over Redis a moment later
        # (scaled mode reads are not read-your-writes across processes; a CI run saw 30).
        expected = {"rank": 1, "user_id": "alice", "username": "alice", "score": 40}

        async def both_show_it() -> bool:
            tops = [(await http.get("/api/scores/top10")).json()["scores"] for _ in range(4)]
            return all(expected in top for top in tops)

        await async_wait_until(both_show_it, 5, "both workers to serve the last update")
        user = await http.get("/api/users/alice")
        assert user.status_code == 200
        assert user.json()["score"] == 40
    # nginx spread them: each worker applied some, none was applied twice.
    gained = [accepted(w) - b for w, b in zip(stack.workers, before, strict=True)]
    assert sum(gained) == 4
    assert all(g >= 1 for g in gained), gained


async def test_plain_http_is_sent_to_https_keeping_the_method(stack: Stack) -> None:
    transport = httpx.AsyncHTTPTransport(local_address=OUTSIDE)
    async with httpx.AsyncClient(transport=transport, timeout=scaled(10)) as http:
        response = await http.post(stack.nginx.http_url + "/api/scores/update", json={})
    assert response.status_code == 308
    assert response.headers["location"] == "https://127.0.0.1/api/scores/update"


async def test_the_services_limits_answer_not_nginxs(stack: Stack) -> None:
    async with client(stack, OUTSIDE) as http:
        # A 12,000-character token passes nginx and is judged by the service (401, JSON).
        long = await http.post(
            "/api/scores/update",
            json={"user_id": "longtoken", "score_delta": 1},
            headers={"Authorization": "Bearer " + "a" * 12_000},
        )
        assert long.status_code == 401, long.text
        assert set(long.json()) == {"error", "message"}
        # A body over the service's 16 KiB: the service's 413; over nginx's 64k: nginx's, in the
        # same shape.
        padded = {"user_id": "big", "score_delta": 1, "auth_token": token("big")}
        service = await http.post("/api/scores/update", json={**padded, "action_id": "x" * 20_000})
        _json_error(service, 413, "payload_too_large")
        edge = await http.post("/api/scores/update", json={**padded, "action_id": "x" * 100_000})
        _json_error(edge, 413, "payload_too_large")
        assert (await http.get("/api/users/big")).status_code == 404
        assert (await http.get("/api/users/longtoken")).status_code == 404


# -- the live channels over wss:// -----------------------------------------------------------


async def test_the_live_channels_over_wss_get_an_update_posted_through_nginx(
    stack: Stack,
) -> None:
    ssl = stack.nginx.ssl_context()

    async def connect(path: str) -> ClientConnection:
        return await websockets.connect(
            stack.nginx.wss_url + path,
            ssl=ssl,
            local_addr=(OUTSIDE, 0),
            open_timeout=scaled(10),
        )

    # Three sockets: nginx spreads them over both workers, so at least one is on a worker other
    # than the one that applies the update (the Redis bus carries it across).
    async with (
        await connect("/ws/scoreboard") as seed,
        await connect("/ws/boards/main") as board,
        await connect("/ws") as multiplex,
    ):
        await next_message(seed, "SNAPSHOT")
        await next_message(board, "SNAPSHOT")
        subscribe = {"type": "subscribe", "id": "t", "board": "main", "view": "top"}
        await multiplex.send(json.dumps(subscribe))
        await next_message(multiplex, "snapshot")
        async with client(stack, OUTSIDE) as http:
            response = await post(http, "wsuser", 999)
            assert response.status_code == 200, response.text
        for ws in (seed, board):
            update = await next_message(ws, "SCORE_UPDATE")
            assert update["data"]["user_id"] == "wsuser"
            assert update["data"]["new_score"] == 999
        state = await next_message(multiplex, "update")
        assert state["rows"][0]["user_id"] == "wsuser"


def test_the_live_channels_timeouts_outlast_the_ping_interval() -> None:
    """A quiet board sends nothing but pings: nginx must not cut a socket between two."""
    text = EXAMPLE.read_text()
    block = re.search(r"location /ws \{(.*?)\}", text, re.S)
    assert block is not None, "deploy/nginx.conf has no `location /ws` block"
    ping = Settings.model_fields["ws_ping_interval"].default
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        found = re.search(rf"{directive} (\d+)s;", block.group(1))
        assert found is not None, f"`location /ws` sets no {directive}"
        assert int(found.group(1)) >= 2 * ping, f"{directive} {found.group(1)}s, ping {ping}s"


# -- the client address ----------------------------------------------------------------------


async def test_the_rate_limit_counts_the_real_client_and_a_spoofed_header_changes_nothing(
    stack: Stack,
) -> None:
    # Another outside client, so the budget spent here is nobody else's in this module.
    spoofer = "127.0.0.3"
    skip = [len(w.log().splitlines()) for w in stack.workers]
    async with client(stack, spoofer) as http:
        # A fresh X-Forwarded-For on each: were it believed, each would be a new address.
        statuses = []
        for i in range(ADDRESS_LIMIT):
            forged = {"X-Forwarded-For": f"198.51.100.{i}"}
            response = await http.post("/api/scores/update", json={}, headers=forged)
            statuses.append(response.status_code)
        assert statuses == [400] * ADDRESS_LIMIT
        for forged in ("198.51.100.200", INSIDE, f"{INSIDE}, {INSIDE}"):
            refused = await post(http, "mallory", 5, **{"X-Forwarded-For": forged})
            _json_error(refused, 429, "rate_limited_address")
            assert "retry-after" in refused.headers
        assert (await http.get("/api/users/mallory")).status_code == 404
    # nginx's own address (what the workers' peer is) and other clients keep their budgets.
    for source in (INSIDE, OUTSIDE):
        async with client(stack, source) as http:
            response = await http.post("/api/scores/update", json={})
            assert response.status_code == 400, response.text

    def logged() -> list[str]:
        pairs = zip(stack.workers, skip, strict=True)
        return [c for worker, lines in pairs for c in rejected_clients(worker, lines)]

    async def every_refusal_logged() -> bool:
        return len(logged()) >= ADDRESS_LIMIT + 5

    await async_wait_until(every_refusal_logged, 10, "the rejected updates' log lines")
    clients = logged()
    assert sorted(set(clients)) == sorted({spoofer, INSIDE, OUTSIDE})
    assert clients.count(spoofer) == ADDRESS_LIMIT + 3
    assert clients.count(INSIDE) == 1


# -- /metrics --------------------------------------------------------------------------------


async def test_metrics_are_refused_from_outside_whatever_the_headers_say(stack: Stack) -> None:
    async with client(stack, OUTSIDE) as http:
        _json_error(await http.get("/metrics"), 403, "forbidden")
        forged = await http.get("/metrics", headers={"X-Forwarded-For": INSIDE})
        _json_error(forged, 403, "forbidden")
        # nginx matches locations on the decoded, merged path, as the service routes.
        for disguised in ("//metrics", "/%6Detrics", "/metrics?format=text"):
            _json_error(await http.get(stack.nginx.https_url + disguised), 403, "forbidden")
    async with client(stack, INSIDE) as http:
        inside = await http.get("/metrics")
    assert inside.status_code == 200
    assert "scoreboard_updates_total" in inside.text


# -- workers restarting ----------------------------------------------------------------------


async def test_while_one_worker_restarts_every_update_is_answered_by_the_other(
    stack: Stack,
) -> None:
    stopped, other = stack.workers
    before = accepted(other)
    stopped.stop()  # SIGTERM, as `systemctl restart scoreboard@8001` sends
    try:
        async with client(stack, OUTSIDE) as http:
            # Round robin would send every other one to the stopped worker: nginx finds it
            # refusing connections and passes each such request, a POST too, to the other.
            results = [await post(http, "restart", 1) for _ in range(6)]
            assert [r.status_code for r in results] == [200] * 6, results[-1].text
            assert results[-1].json()["new_score"] == 6
    finally:
        stopped.start()
    assert accepted(other) - before == 6


# -- no worker answering ---------------------------------------------------------------------


async def test_with_no_worker_answering_nginx_answers_503_in_the_services_shape(
    tmp_path: Path,
) -> None:
    # Ports nothing listens on: both workers down (a restart of both at once, say).
    proxy = Nginx(require_nginx(), tmp_path / "nginx", [free_port(), free_port()]).start()
    try:
        transport = httpx.AsyncHTTPTransport(local_address=OUTSIDE, verify=proxy.ssl_context())
        async with httpx.AsyncClient(transport=transport, timeout=scaled(10)) as http:
            response = await http.get(proxy.https_url + "/api/scores/top10")
    finally:
        proxy.stop()
    _json_error(response, 503, "unavailable")
    assert response.headers["retry-after"] == "5"
