"""The courier: takes due deliveries from the outbox and sends them, one attempt each.

At least once: a delivery leaves the outbox only when its endpoint answered 2xx (``delivered``)
or its retry window is over (``failed``). Between claim and settle it is leased to this
process; if the process dies there, the lease runs out and any process sends it again, with the
same ``webhook-id`` (receivers deduplicate on it). Every process of a deployment runs a courier;
the outbox's claim gives each delivery to one of them at a time.

Each attempt: the URL is checked again (``Policy.target``: a name may resolve elsewhere
since it was registered) and the connection pinned to the address that check found (no second
lookup a rebinding DNS server could answer differently), the body signed now, one POST with a
``SEND_TIMEOUT`` (connect to last byte), no redirects followed (a 3xx is a failure), the
answer's body never read. A failure is tried again after ``Policy.backoff``; once
``retry_window`` has passed since the delivery was queued it fails for good, and its endpoint
is disabled (audited, key ``(webhooks)``) until an operator enables it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx

from scoreboard import webhooks
from scoreboard.errors import InvalidRequest
from scoreboard.model import Audit
from scoreboard.ports import Outbox
from scoreboard.webhooks import Claimed, Policy

log = logging.getLogger(__name__)

BATCH = 16
"""Deliveries claimed (and sent concurrently) at a time."""
SYSTEM_KEY = "(webhooks)"
"""The ``key_name`` of the audit rows the courier leaves: no admin key can have this name."""


async def resolve(host: str, port: int) -> Sequence[str]:
    """Every address ``host`` resolves to (the system resolver, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class Courier:
    def __init__(
        self,
        outbox: Outbox,
        policy: Policy,
        *,
        poll: float = 1.0,
        resolver: webhooks.Resolver = resolve,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        transport: httpx.AsyncBaseTransport | None = None,
        on_attempt: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        """``on_attempt`` is told each attempt's outcome: ``delivered``, ``retrying`` or
        ``failed`` (given up: the endpoint disabled) (``scoreboard_webhook_attempts_total``)."""
        self.outbox = outbox
        self._on_attempt = on_attempt
        self.policy = policy
        self.poll = poll
        self._resolve = resolver
        self._clock = clock
        self._transport = transport
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def poke(self) -> None:
        """Look at the outbox now (something was queued)."""
        self._wake.set()

    async def start(self) -> None:
        # No proxies from the environment (a proxy would resolve the host itself, past the
        # address check), no redirects, TLS verified.
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(webhooks.SEND_TIMEOUT),
            trust_env=False,
            transport=self._transport,
        )
        self._task = asyncio.create_task(self._run(), name="webhook-courier")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store away, say: look again later
                log.exception("webhook deliveries could not be taken from the outbox")
                sent = 0
            if sent:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll):
                    await self._wake.wait()
            self._wake.clear()

    async def run_once(self) -> int:
        """Claim what is due and send it; how many were claimed."""
        claimed = await self.outbox.claim(limit=BATCH, lease=self.policy.lease)
        await asyncio.gather(*(self._deliver(c) for c in claimed))
        return len(claimed)

    async def _deliver(self, claimed: Claimed) -> None:
        delivery, webhook = claimed.delivery, claimed.webhook
        now = self._clock()
        error = await self._send(claimed, now)
        if error is None:
            await self.outbox.settle(delivery.id, delivered=True)
            self._on_attempt("delivered")
            log.info(
                "webhook delivered",
                extra={"webhook": webhook.id, "delivery": delivery.id, "event": delivery.event},
            )
            return
        attempts = delivery.attempts + 1
        next_at = now + timedelta(seconds=self.policy.backoff(attempts))
        if next_at - delivery.created_at > self.policy.retry_window:
            await self.outbox.settle(delivery.id, delivered=False, error=error, next_at=None)
            self._on_attempt("failed")
            log.warning(
                "webhook delivery given up; endpoint disabled",
                extra={"webhook": webhook.id, "delivery": delivery.id, "error": error},
            )
            await self._disable(webhook.id, delivery.id, error)
            return
        await self.outbox.settle(delivery.id, delivered=False, error=error, next_at=next_at)
        self._on_attempt("retrying")
        log.info(
            "webhook delivery failed; retrying",
            extra={"webhook": webhook.id, "delivery": delivery.id, "error": error},
        )

    async def _send(self, claimed: Claimed, now: datetime) -> str | None:
        """``None`` when the endpoint took it (2xx), else what went wrong (kept as
        ``last_error``: never the answer's body)."""
        delivery, webhook = claimed.delivery, claimed.webhook
        client = self._client
        if client is None:
            return "not started"
        try:
            target = await self.policy.target(webhook.url, self._resolve)
        except InvalidRequest as exc:
            return f"refused: {exc}"
        body = delivery.payload.encode()
        if len(body) > webhooks.MAX_BODY:  # fit() makes it so; a guard against old rows
            return "refused: body larger than 64 KiB"
        signed = webhooks.headers(
            delivery.message_id, webhook.secrets_at(now), now, delivery.payload
        )
        headers = dict(signed)
        extensions = {}
        if target.host_header is not None:
            headers["Host"] = target.host_header
        if target.server_name is not None:
            extensions["sni_hostname"] = target.server_name  # httpx: TLS name and cert check
        try:
            async with client.stream(
                "POST", target.url, content=body, headers=headers, extensions=extensions
            ) as answer:
                status = answer.status_code
        except httpx.TimeoutException:
            return "timeout"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= status < 300:
            return None
        if 300 <= status < 400:
            return f"HTTP {status} (redirects are not followed)"
        return f"HTTP {status}"

    async def _disable(self, webhook_id: str, delivery_id: int, error: str) -> None:
        webhook = await self.outbox.webhook(webhook_id)
        if webhook is None or not webhook.enabled:
            return
        off = replace(webhook, enabled=False, disabled_at=self._clock())
        audit = Audit(
            SYSTEM_KEY,
            "webhook_disable",
            f"webhook:{webhook_id}",
            None,
            {"delivery": delivery_id, "error": error, "retry_hours": self._hours()},
        )
        await self.outbox.update_webhook(off, audit)

    def _hours(self) -> float:
        return self.policy.retry_window / timedelta(hours=1)
