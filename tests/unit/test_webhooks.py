"""The webhooks core: which URLs may be registered, the retry schedule, the signature (checked
with the ``standardwebhooks`` library), the body's limit, and which events a change of top
makes. No I/O: the resolver is a dict."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook as Verifier

from scoreboard import webhooks
from scoreboard.errors import InvalidRequest
from scoreboard.model import RankedEntry

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DNS = {
    "public.example": ["93.184.215.14"],
    "internal.example": ["93.184.215.14", "10.1.2.3"],  # one private answer is enough to refuse
    "v6.example": ["2001:db8::1"],  # documentation range: not global
    "ok6.example": ["2606:4700::1111"],
}


async def resolve(host: str, port: int) -> Sequence[str]:
    if host in DNS:
        return DNS[host]
    try:
        import ipaddress

        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        raise OSError("unknown host") from None


POLICY = webhooks.Policy(allow_hosts=frozenset({"127.0.0.1"}))


@pytest.mark.parametrize(
    "url",
    [
        "https://public.example/hook",
        "https://public.example:8443/hook?x=1",
        "https://ok6.example/",
        "http://127.0.0.1:8080/hook",  # an allowed host: http and loopback both fine
        "https://127.0.0.1/hook",
    ],
)
async def test_allowed_urls(url: str) -> None:
    assert await POLICY.check_url(url, resolve) == url


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://public.example/hook", "invalid_url"),
        ("https://internal.example/hook", "forbidden_url"),
        ("https://v6.example/hook", "forbidden_url"),
        ("https://10.0.0.1/", "forbidden_url"),
        ("https://100.64.0.1/", "forbidden_url"),  # carrier-grade NAT
        ("https://169.254.169.254/", "forbidden_url"),
        ("https://[::1]/", "forbidden_url"),
        ("https://[::ffff:127.0.0.1]/", "forbidden_url"),
        ("https://224.0.0.1/", "forbidden_url"),
        ("http://127.0.0.2/", "invalid_url"),  # not the allowed host
        ("https://nowhere.example/", "unresolvable_url"),
        ("https://a:b@public.example/", "invalid_url"),
        ("https://public.example:99999/", "invalid_url"),
        ("javascript:alert(1)", "invalid_url"),
        ("https://public.example/a b", "invalid_url"),
        ("", "invalid_url"),
        ("https://public.example/" + "a" * 3000, "invalid_url"),
    ],
)
async def test_refused_urls(url: str, code: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await POLICY.check_url(url, resolve)
    assert refused.value.code == code


def test_backoff_grows_exponentially_with_jitter_up_to_a_cap() -> None:
    policy = webhooks.Policy(retry_base=1.0, retry_max=60.0, rng=random.Random(7))
    for attempts in range(1, 12):
        cap = min(60.0, 2.0 ** (attempts - 1))
        delays = {policy.backoff(attempts) for _ in range(20)}
        assert all(cap / 2 <= d <= cap for d in delays)
        assert len(delays) > 1  # jittered


def test_the_signature_is_what_the_library_verifies() -> None:
    secret, old = webhooks.new_secret(), webhooks.new_secret()
    body = '{"type":"top.entered"}'
    at = datetime.now(UTC)
    signed = webhooks.headers("msg_1", (secret, old), at, body)
    assert signed["webhook-timestamp"] == str(int(at.timestamp()))
    for key in (secret, old):
        assert Verifier(key).verify(body, signed) == {"type": "top.entered"}
    with pytest.raises(Exception, match="signature"):
        Verifier(webhooks.new_secret()).verify(body, signed)


def test_the_old_secret_signs_for_24_hours_after_a_rotation() -> None:
    hook = webhooks.Webhook(
        "wh_1",
        "https://x",
        webhooks.EVENTS,
        None,
        "new",
        NOW,
        old_secret="old",
        old_secret_until=NOW + webhooks.ROTATION_OVERLAP,
    )
    assert hook.secrets_at(NOW + timedelta(hours=23)) == ("new", "old")
    assert hook.secrets_at(NOW + timedelta(hours=24)) == ("new",)


def entries(*users: str) -> list[RankedEntry]:
    return [RankedEntry(n + 1, u, u.title(), 100 - n) for n, u in enumerate(users)]


def test_a_change_of_top_makes_entries_and_exits() -> None:
    before = entries(*[f"u{n}" for n in range(10)])
    after = entries("new", *[f"u{n}" for n in range(9)])
    notices = webhooks.top_changes("main", "all", 42, before, after, NOW)
    assert [(n.event, n.user_id, n.data["rank"]) for n in notices] == [
        ("top.entered", "new", 1),
        ("top.left", "u9", None),
    ]
    assert notices[0].key == "top.entered:main:all:42:new"
    assert webhooks.top_changes("main", "all", 43, after, after, NOW) == []


def test_a_webhook_wants_its_events_on_its_boards() -> None:
    notice = webhooks.period_closed("weekly", "2026-W48", entries("a"), NOW)
    every = webhooks.Webhook("wh_1", "https://x", ("period.closed",), None, "s", NOW)
    assert every.wants(notice)
    assert not webhooks.Webhook("wh_1", "https://x", ("period.closed",), ("main",), "s", NOW).wants(
        notice
    )
    assert not webhooks.Webhook("wh_1", "https://x", ("top.left",), None, "s", NOW).wants(notice)
    off = webhooks.Webhook("wh_1", "https://x", ("period.closed",), None, "s", NOW, enabled=False)
    assert not off.wants(notice)


def test_no_body_is_larger_than_64_kib() -> None:
    notice = webhooks.Notice(
        "top.entered", "k", ("main",), {"board": "main", "rank": 3, "username": "x" * 100_000}
    )
    body = notice.body(NOW)
    assert len(body.encode()) <= webhooks.MAX_BODY
    assert json.loads(body)["data"] == {"board": "main", "rank": 3, "truncated": True}


# -- pinning: one lookup per attempt, and the connection goes where it said ----------------------


async def test_a_target_is_pinned_to_the_checked_address_keeping_the_name_for_host_and_tls() -> (
    None
):
    target = await POLICY.target("https://public.example:8443/hook?x=1", resolve)
    assert target == webhooks.Target(
        "https://93.184.215.14:8443/hook?x=1", "public.example:8443", "public.example"
    )
    six = await POLICY.target("https://ok6.example/h", resolve)
    assert (six.url, six.host_header) == ("https://[2606:4700::1111]/h", "ok6.example")
    allowed = await POLICY.target("http://127.0.0.1:8080/hook", resolve)
    assert allowed == webhooks.Target("http://127.0.0.1:8080/hook")  # by name, as written


async def test_a_rebinding_name_cannot_send_the_delivery_to_a_private_address() -> None:
    """The name answers a public address, then a loopback one (a rebinding DNS server): the
    attempt resolves once and connects to the address it checked, with the name as ``Host``
    and as the TLS server name."""
    import httpx

    from scoreboard.adapters.memory_store import MemoryScoreStore
    from scoreboard.courier import Courier
    from scoreboard.model import Audit

    answers = iter([["93.184.215.14"], ["127.0.0.1"], ["127.0.0.1"]])
    lookups: list[str] = []

    async def rebinding(host: str, port: int) -> Sequence[str]:
        lookups.append(host)
        return next(answers)

    sent: list[httpx.Request] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    outbox = MemoryScoreStore(lambda: NOW)  # its outbox half
    hook = webhooks.Webhook(
        "wh_1", "https://hooks.example/in", ("period.closed",), None, webhooks.new_secret(), NOW
    )
    await outbox.add_webhook(hook, Audit("ops", "webhook_create", "webhook:wh_1"))
    await outbox.enqueue(webhooks.period_closed("main", "2026-W48", [], NOW))
    courier = Courier(
        outbox,
        POLICY,
        resolver=rebinding,
        transport=httpx.MockTransport(endpoint),
        clock=lambda: NOW,
    )
    await courier.start()
    try:
        assert await courier.run_once() == 1
    finally:
        await courier.stop()
    assert lookups == ["hooks.example"]  # one lookup: nothing for the rebinding to answer
    (request,) = sent
    assert request.url.host == "93.184.215.14"
    assert request.headers["host"] == "hooks.example"
    assert request.extensions["sni_hostname"] == "hooks.example"
    (delivery,) = await outbox.deliveries("wh_1", limit=10)
    assert delivery.status == "delivered"
