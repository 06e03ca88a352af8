"""Webhooks over the admin API, in-process on a SQLite file, delivering to a real HTTP receiver
on 127.0.0.1 (``tests.support.receiver``): who may manage them, what is refused (and then
nothing is stored), each event as the receiver gets it, signatures verified with the
``standardwebhooks`` library, retries, rotation, redelivery, disabling and erasure.

Retries are made fast here (``webhook_retry_base``, ``webhook_poll``); the schedule itself is
unit-tested (tests/unit/test_webhooks.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import WebhookVerificationError

from tests.api.conftest import Api, ApiFactory, assert_error
from tests.api.test_admin import Admin, make_key
from tests.support.receiver import Receiver, receiver
from tests.support.timing import async_wait_until

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "boards.toml"
FAST = {
    "webhook_allow_hosts": "127.0.0.1",
    "webhook_retry_base": 0.05,
    "webhook_poll": 0.05,
}
EVERYTHING = ["period.closed", "top.entered", "top.left", "score.voided"]


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


@pytest.fixture
async def admin(make_api: ApiFactory) -> AsyncIterator[Admin]:
    async with make_api(boards=EXAMPLE, **FAST) as api:
        yield Admin(api, await make_key(api))


async def register(admin: Admin, url: str, events: Any = None, boards: Any = None) -> Any:
    body = {"url": url, "events": events or EVERYTHING, "boards": boards}
    return await admin.call("POST", "/webhooks", body, status=200)


async def wait_for(hook: Receiver, event: str, n: int = 1) -> list[Any]:
    async def arrived() -> bool:
        return len(hook.of(event)) >= n

    await async_wait_until(arrived, 10, f"{n} {event} at the receiver")
    return hook.of(event)


async def attempt_counts(admin: Admin) -> dict[str, int]:
    """``scoreboard_webhook_attempts_total`` by outcome, from ``/metrics``."""
    text = (await admin.api.client.get("/metrics")).text
    counts = {}
    for line in text.splitlines():
        if line.startswith("scoreboard_webhook_attempts_total{"):
            outcome = line.split('outcome="')[1].split('"')[0]
            counts[outcome] = int(float(line.split()[-1]))
    return counts


def audit_actions(entries: list[dict[str, Any]]) -> list[str]:
    return [e["action"] for e in entries]


# -- managing ----------------------------------------------------------------------------------


async def test_a_webhook_is_registered_listed_and_deleted(admin: Admin, hook: Receiver) -> None:
    made = await register(admin, hook.url, ["top.entered"], ["main", "weekly"])
    assert made["secret"].startswith("whsec_")
    assert made["id"].startswith("wh_")
    assert made["enabled"] is True
    assert made["boards"] == ["main", "weekly"]
    listed = (await admin.get("/webhooks"))["webhooks"]
    assert listed == [{k: v for k, v in made.items() if k != "secret"}]  # never the secret again
    assert (await admin.call("DELETE", f"/webhooks/{made['id']}"))["deleted"] is True
    assert (await admin.get("/webhooks"))["webhooks"] == []
    await admin.call("DELETE", f"/webhooks/{made['id']}", status=404)
    entries = (await admin.get("/audit"))["entries"]
    assert audit_actions(entries) == ["webhook_delete", "webhook_create"]
    assert {e["key"] for e in entries} == {"ops"}
    assert {e["reason"] for e in entries} == {None}
    assert entries[1]["details"]["url"] == hook.url


REFUSED_URLS = [
    "http://example.com/hook",  # not https
    "https://10.0.0.1/hook",
    "https://192.168.1.20/hook",
    "https://172.16.0.1/hook",
    "https://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
    "https://[::1]/hook",
    "https://[fe80::1]/hook",
    "https://[::ffff:10.0.0.1]/hook",
    "https://0.0.0.0/hook",
    "https://localhost/hook",  # resolves to loopback
    "https://user:pw@93.184.215.14/hook",
    "ftp://93.184.215.14/hook",
    "not a url",
    "https:///nohost",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_unsafe_urls_are_refused_and_nothing_is_stored(admin: Admin, url: str) -> None:
    response = await admin.api.client.post(
        "/api/admin/webhooks", json={"url": url, "events": EVERYTHING}, headers=admin.headers
    )
    assert_error(response, 400)
    assert (await admin.get("/webhooks"))["webhooks"] == []
    assert (await admin.get("/audit"))["entries"] == []


BAD_BODIES: list[Any] = [
    {},
    {"events": ["top.entered"]},
    {"url": "http://127.0.0.1:9/", "events": []},
    {"url": "http://127.0.0.1:9/", "events": ["top.moved"]},
    {"url": "http://127.0.0.1:9/", "events": "top.entered"},
    {"url": "http://127.0.0.1:9/", "events": ["top.entered"], "boards": []},
    {"url": "http://127.0.0.1:9/", "events": ["top.entered"], "boards": ["Not A Board"]},
    {"url": "http://127.0.0.1:9/", "events": ["top.entered"], "reason": "no reasons here"},
    {"url": 5, "events": ["top.entered"]},
    ["http://127.0.0.1:9/"],
    None,
]


@pytest.mark.parametrize("body", BAD_BODIES)
async def test_bad_bodies_are_400_and_change_nothing(admin: Admin, body: Any) -> None:
    response = await admin.api.client.post("/api/admin/webhooks", json=body, headers=admin.headers)
    assert_error(response, 400)
    assert (await admin.get("/webhooks"))["webhooks"] == []
    assert (await admin.get("/audit"))["entries"] == []


ROUTES = [
    ("POST", "/api/admin/webhooks", {"url": "http://127.0.0.1:9/", "events": ["top.entered"]}),
    ("GET", "/api/admin/webhooks", None),
    ("DELETE", "/api/admin/webhooks/wh_0123456789abcdef", None),
    ("GET", "/api/admin/webhooks/wh_0123456789abcdef/deliveries", None),
    ("POST", "/api/admin/webhooks/wh_0123456789abcdef/enable", None),
    ("POST", "/api/admin/webhooks/wh_0123456789abcdef/rotate-secret", None),
    ("POST", "/api/admin/webhooks/wh_0123456789abcdef/deliveries/1/redeliver", None),
]


async def test_every_webhook_route_is_401_without_a_key(make_api: ApiFactory) -> None:
    async with make_api(admin_auth_limit="", **FAST) as api:
        made = await Admin(api, await make_key(api)).call(
            "POST", "/webhooks", {"url": "http://127.0.0.1:9/", "events": ["top.entered"]}, 200
        )
        for method, path, body in ROUTES:
            path = path.replace("wh_0123456789abcdef", made["id"])
            for header in (None, "Bearer sbk_" + "A" * 43, "Basic x"):
                headers = {} if header is None else {"Authorization": header}
                response = await api.client.request(method, path, json=body, headers=headers)
                assert_error(response, 401)
                assert response.headers["cache-control"] == "no-store"
        assert len((await Admin(api, await make_key(api, "b")).get("/webhooks"))["webhooks"]) == 1


async def test_unknown_webhooks_and_deliveries_are_404(admin: Admin, hook: Receiver) -> None:
    for method, path, _ in ROUTES[2:]:
        response = await admin.api.client.request(method, path, headers=admin.headers, json=None)
        assert assert_error(response, 404)["error"] == "unknown_webhook", path
    made = await register(admin, hook.url)
    missing = f"/webhooks/{made['id']}/deliveries/99/redeliver"
    assert (await admin.call("POST", missing, status=404))["error"] == "unknown_delivery"


# -- delivering --------------------------------------------------------------------------------


async def test_a_top_10_entry_is_delivered_signed(admin: Admin, hook: Receiver) -> None:
    made = await register(admin, hook.url, ["top.entered", "top.left"], ["main"])
    await admin.api.ok("alice", 10)
    (got,) = await wait_for(hook, "top.entered")
    payload = got.verify(made["secret"])  # the library's own check
    assert payload["type"] == "top.entered"
    assert payload["data"] == {
        "board": "main",
        "period": "all",
        "user": {"user_id": "alice", "username": "alice", "score": 10},
        "rank": 1,
    }
    assert got.headers["webhook-id"].startswith("msg_")
    assert got.headers["webhook-signature"].startswith("v1,")
    assert got.headers["content-type"] == "application/json"
    with pytest.raises(WebhookVerificationError):
        got.verify("whsec_" + "A" * 43)
    # alice entered every board her points feed; only main was asked for.
    assert {r.json()["data"]["board"] for r in hook.received} == {"main"}

    # The receiver has the request before the courier has its answer: the row says
    # "delivered" a moment after the receiver saw it, not at the same instant.
    async def recorded() -> bool:
        found = (await admin.get(f"/webhooks/{made['id']}/deliveries"))["deliveries"]
        return bool(found) and found[0]["status"] != "pending"

    await async_wait_until(recorded, 10, "the courier to record the answer")
    (delivery,) = (await admin.get(f"/webhooks/{made['id']}/deliveries"))["deliveries"]
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 1
    assert delivery["message_id"] == got.message_id


async def test_leaving_the_top_10_is_delivered(admin: Admin, hook: Receiver) -> None:
    await register(admin, hook.url, ["top.left"], ["main"])
    for n in range(10):
        await admin.api.ok(f"p{n}", 100 + n)
    await admin.api.ok("late", 500)  # pushes p0 (100) out
    (left,) = await wait_for(hook, "top.left")
    assert left.json()["data"]["user"]["user_id"] == "p0"
    assert left.json()["data"]["rank"] is None


async def test_a_receiver_failing_three_times_gets_it_exactly_once_more(
    admin: Admin, hook: Receiver
) -> None:
    made = await register(admin, hook.url, ["top.entered"], ["main"])
    hook.fail = 3
    await admin.api.ok("alice", 10)

    async def delivered() -> bool:
        found = (await admin.get(f"/webhooks/{made['id']}/deliveries"))["deliveries"]
        return bool(found) and found[0]["status"] == "delivered"

    await async_wait_until(delivered, 10, "the delivery to succeed")
    (delivery,) = (await admin.get(f"/webhooks/{made['id']}/deliveries"))["deliveries"]
    assert delivery["attempts"] == 4
    assert delivery["last_error"] is None
    await admin.api.client.get("/api/boards")  # a moment for a stray fifth attempt to show
    await admin.api.app.state.components.courier.run_once()
    attempts = hook.of("top.entered")
    assert len(attempts) == 4
    assert len({a.message_id for a in attempts}) == 1  # one message, four attempts
    for attempt in attempts:
        attempt.verify(made["secret"])
    assert await attempt_counts(admin) == {"delivered": 1, "retrying": 3, "failed": 0}


async def test_a_void_is_delivered(admin: Admin, hook: Receiver) -> None:
    made = await register(admin, hook.url, ["score.voided"])
    await admin.api.ok("alice", 10)
    (event,) = (await admin.get("/users/alice/events"))["events"]
    await admin.post(f"/events/{event['event_id']}/void")
    (got,) = await wait_for(hook, "score.voided")
    data = got.verify(made["secret"])["data"]
    assert data["event_id"] == event["event_id"]
    assert data["user_id"] == "alice"
    assert data["delta"] == 10
    assert data["metric"] == "points"
    assert set(data["boards"]) == {"main", "weekly", "today", "season"}


async def test_a_closed_period_is_delivered_with_its_final_top(
    admin: Admin, hook: Receiver
) -> None:
    await register(admin, hook.url, ["period.closed"], ["season"])
    await admin.api.ok("alice", 10)
    await admin.api.ok("bob", 20)
    closed = await admin.post("/boards/season/rollover")
    (got,) = await wait_for(hook, "period.closed")
    data = got.json()["data"]
    assert data["board"] == "season"
    assert data["period"] == closed["closed"]["id"]
    assert [(r["rank"], r["user_id"], r["score"]) for r in data["top"]] == [
        (1, "bob", 20),
        (2, "alice", 10),
    ]


async def test_a_rotated_secret_signs_alongside_the_old_one(admin: Admin, hook: Receiver) -> None:
    made = await register(admin, hook.url, ["top.entered"], ["main"])
    rotated = await admin.call("POST", f"/webhooks/{made['id']}/rotate-secret")
    assert rotated["secret"] != made["secret"]
    assert rotated["old_secret_until"] is not None
    await admin.api.ok("alice", 10)
    (got,) = await wait_for(hook, "top.entered")
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    got.verify(made["secret"])
    got.verify(rotated["secret"])
    actions = audit_actions((await admin.get("/audit"))["entries"])
    assert actions == ["webhook_rotate_secret", "webhook_create"]


async def test_deliveries_page_and_redeliver(admin: Admin, hook: Receiver) -> None:
    made = await register(admin, hook.url, ["top.entered"], ["main"])
    for n in range(5):
        await admin.api.ok(f"p{n}", 10 + n)
    await wait_for(hook, "top.entered", 5)
    path = f"/webhooks/{made['id']}/deliveries"
    first = await admin.get(path, limit=2)
    second = await admin.get(path, limit=2, before=first["next"])
    third = await admin.get(path, limit=2, before=second["next"])
    ids = [d["id"] for page in (first, second, third) for d in page["deliveries"]]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == 5
    assert third["next"] is None
    oldest = first["deliveries"][0]
    await admin.call("POST", f"{path}/{oldest['id']}/redeliver")
    await wait_for(hook, "top.entered", 6)
    again = hook.of("top.entered")[-1]
    assert again.message_id == oldest["message_id"]  # the same message, sent again
    assert audit_actions((await admin.get("/audit"))["entries"])[0] == "webhook_redeliver"
    assert_error(
        await admin.api.client.get(f"/api/admin{path}", params={"limit": 0}, headers=admin.headers),
        400,
    )


async def test_an_endpoint_failing_the_whole_window_is_disabled(
    make_api: ApiFactory, hook: Receiver
) -> None:
    # A window of about 0.36 s: a few fast retries, then given up.
    async with make_api(**{**FAST, "webhook_retry_hours": 0.0001}) as api:
        admin = Admin(api, await make_key(api))
        made = await register(admin, hook.url, ["top.entered"])
        hook.status = 503
        await api.ok("alice", 10)

        async def disabled() -> bool:
            listed = (await admin.get("/webhooks"))["webhooks"]
            return listed[0]["enabled"] is False

        await async_wait_until(disabled, 10, "the endpoint to be disabled")
        (delivery,) = (await admin.get(f"/webhooks/{made['id']}/deliveries"))["deliveries"]
        assert delivery["status"] == "failed"
        assert delivery["last_error"] == "HTTP 503"
        assert delivery["attempts"] == hook.count() >= 2
        counts = await attempt_counts(admin)
        assert counts == {"delivered": 0, "retrying": delivery["attempts"] - 1, "failed": 1}
        entry = (await admin.get("/audit"))["entries"][0]
        assert entry["action"] == "webhook_disable"
        assert entry["key"] == "(webhooks)"
        assert entry["target"] == f"webhook:{made['id']}"
        # Enabled again, and the failed delivery sent again by hand.
        hook.status = 200
        assert (await admin.call("POST", f"/webhooks/{made['id']}/enable"))["changed"] is True
        path = f"/webhooks/{made['id']}/deliveries/{delivery['id']}/redeliver"
        await admin.call("POST", path)

        async def delivered() -> bool:
            found = (await admin.get(f"/webhooks/{made['id']}/deliveries"))["deliveries"]
            return found[0]["status"] == "delivered"

        await async_wait_until(delivered, 10, "the redelivery")


async def test_a_redirect_is_not_followed(admin: Admin, hook: Receiver) -> None:
    made = await register(admin, hook.url, ["top.entered"], ["main"])
    hook.status, hook.location = 307, hook.url + "/elsewhere"
    await admin.api.ok("alice", 10)

    async def failed_once() -> bool:
        found = (await admin.get(f"/webhooks/{made['id']}/deliveries"))["deliveries"]
        return bool(found) and found[0]["attempts"] >= 1

    await async_wait_until(failed_once, 10, "an attempt")
    (delivery,) = (await admin.get(f"/webhooks/{made['id']}/deliveries"))["deliveries"]
    assert delivery["status"] == "pending"
    assert "redirect" in delivery["last_error"]
    assert {r.path for r in hook.received} == {"/hook"}


async def test_erasing_a_user_deletes_the_deliveries_about_them(
    admin: Admin, hook: Receiver
) -> None:
    made = await register(admin, hook.url, ["top.entered"], ["main"])
    hook.status = 500  # kept queued
    await admin.api.ok("alice", 10)
    await admin.api.ok("bob", 5)
    await wait_for(hook, "top.entered", 2)
    await admin.call("DELETE", "/users/alice", {"reason": "asked to be forgotten"})
    found = (await admin.get(f"/webhooks/{made['id']}/deliveries"))["deliveries"]
    assert len(found) == 1
    assert admin.api.rows("SELECT count(*) FROM webhook_deliveries WHERE payload LIKE '%alice%'")[
        0
    ] == (0,)


async def test_the_same_event_is_queued_once(admin: Admin, hook: Receiver) -> None:
    """A period closed is known by every process that starts the next one: queued once."""
    from scoreboard import webhooks

    made = await register(admin, hook.url, ["period.closed"])
    store = admin.api.app.state.components.store
    notice = webhooks.period_closed("main", "2026-W48", [], webhooks_now())
    assert await store.enqueue(notice) == 1
    assert await store.enqueue(notice) == 0
    await wait_for(hook, "period.closed")
    assert len((await admin.get(f"/webhooks/{made['id']}/deliveries"))["deliveries"]) == 1


def webhooks_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def test_api_sees_nothing_of_webhooks_without_a_change(api: Api) -> None:
    """Registering no webhook costs the update path nothing visible."""
    assert (await api.ok("alice", 1))["new_score"] == 1
