"""``/ws``: one socket, many subscriptions, JSON messages both ways (docs/live.md).

The client subscribes to views (``top``, ``around``, ``me``) of any served board and
unsubscribes by id; the server answers each subscription with a ``snapshot``, then an
``update`` whenever that view changes, ``event`` messages for a ``me`` view, and ``error``
messages for requests it cannot serve (errors are messages, not closes). The views themselves,
and which of them a score update can change, are ``scoreboard.subscriptions``; this module is
the socket: admission (the same origin check and socket caps as the other live channels), the
client's messages read one at a time in order, and a writer that sends what the socket's
``Outbox`` holds when the socket can take it.

Slow sockets: a subscription's state waits in one slot and only its newest is sent; ``me``
events and errors are all sent, in order, and a socket with more than ``MESSAGES_MAX`` of them
waiting is closed with 1013 (try again later): the client reconnects and subscribes again. A
send blocked for ``SCOREBOARD_WS_SEND_TIMEOUT`` ends the socket as on the other channels.

A ``me`` subscription's ``auth_token`` is checked like an update's token in ``user`` mode and
goes no further: it is never logged, never kept, and never part of any message sent back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from scoreboard.auth.decision import identify
from scoreboard.boards import NAME_PATTERN
from scoreboard.bootstrap import Components
from scoreboard.errors import ScoreboardError
from scoreboard.model import USER_ID_RULE, is_valid_user_id
from scoreboard.subscriptions import (
    RADIUS_MAX,
    SUBSCRIPTIONS_MAX,
    TOP_LIMIT_MAX,
    VIEWS,
    LiveViews,
    Outbox,
    ViewKind,
)
from scoreboard.web.extensions import FrameSink, frames_guarded, sink_of, text_frame
from scoreboard.web.guards.client_address import client_address
from scoreboard.web.live.caps import FrameBudget, SocketCaps
from scoreboard.web.live.channel import admit
from scoreboard.web.live.farewell import Farewell
from scoreboard.web.metrics import Metrics

log = logging.getLogger(__name__)

router = APIRouter()

ID_MAX = 64
DEFAULT_LIMIT = 10
DEFAULT_RADIUS = 5
_BOARD_RE = re.compile(NAME_PATTERN)


class Refused(Exception):
    """A client message the server will not act on: sent back as an ``error`` message."""

    def __init__(self, sub_id: str | None, code: str, message: str) -> None:
        super().__init__(message)
        self.sub_id = sub_id
        self.code = code
        self.message = message


def error_message(sub_id: str | None, code: str, message: str) -> str:
    return orjson.dumps({"type": "error", "id": sub_id, "error": code, "message": message}).decode()


def _integer(raw: dict[str, Any], name: str, default: int, most: int, sub_id: str) -> int:
    """``name``'s value: an integer from 1 to ``most``. A number with no fractional part
    (``5.0``, ``5e0``) is that integer, as JSON Schema's ``integer`` (the AsyncAPI document)
    and an update's ``score_delta`` have it; ``true`` is not a number."""
    value = raw.get(name, default)
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int or not 1 <= value <= most:
        raise Refused(sub_id, f"invalid_{name}", f"{name} must be an integer from 1 to {most}")
    return value


async def handle(text: str | bytes, outbox: Outbox, views: LiveViews, parts: Components) -> None:
    """Act on one client message; every refusal becomes an ``error`` message in the outbox."""
    try:
        await _handle(text, outbox, views, parts)
    except Refused as refused:
        outbox.put(error_message(refused.sub_id, refused.code, refused.message))


async def _handle(text: str | bytes, outbox: Outbox, views: LiveViews, parts: Components) -> None:
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise Refused(None, "invalid_json", "a message must be one JSON object") from None
    if not isinstance(raw, dict):
        raise Refused(None, "invalid_json", "a message must be one JSON object")
    sub_id = raw.get("id")
    if not isinstance(sub_id, str) or not 1 <= len(sub_id) <= ID_MAX:
        raise Refused(None, "invalid_id", f"id must be a string of 1-{ID_MAX} characters")
    kind = raw.get("type")
    if kind == "unsubscribe":
        if not views.unsubscribe(outbox, sub_id):
            raise Refused(sub_id, "unknown_subscription", "there is no subscription with this id")
        return
    if kind != "subscribe":
        raise Refused(sub_id, "invalid_type", "type must be 'subscribe' or 'unsubscribe'")
    if sub_id in outbox.subscriptions:
        raise Refused(sub_id, "duplicate_id", "a subscription with this id is open")
    if len(outbox.subscriptions) >= SUBSCRIPTIONS_MAX:
        raise Refused(
            sub_id,
            "too_many_subscriptions",
            f"a socket holds at most {SUBSCRIPTIONS_MAX} subscriptions",
        )
    board = raw.get("board")
    if not isinstance(board, str) or _BOARD_RE.fullmatch(board) is None:
        raise Refused(sub_id, "invalid_board", f"board must be {NAME_PATTERN}")
    if board not in parts.service.boards:
        raise Refused(sub_id, "unknown_board", f"there is no board '{board}'")
    view = raw.get("view")
    if view not in VIEWS:
        raise Refused(sub_id, "invalid_view", "view must be 'top', 'around' or 'me'")
    user_id: str | None = None
    size = 0
    if view == "top":
        size = _integer(raw, "limit", DEFAULT_LIMIT, TOP_LIMIT_MAX, sub_id)
    elif view == "around":
        user_id = raw.get("user_id")
        if not isinstance(user_id, str) or not is_valid_user_id(user_id):
            raise Refused(sub_id, "invalid_user_id", f"user_id must be {USER_ID_RULE}")
        size = _integer(raw, "radius", DEFAULT_RADIUS, RADIUS_MAX, sub_id)
    else:
        user_id = await _me(raw.get("auth_token"), parts, sub_id)
    kind_of: ViewKind = view
    try:
        await views.subscribe(outbox, sub_id, board, kind_of, user_id, size)
    except ScoreboardError as exc:
        raise Refused(sub_id, exc.code, exc.message) from None


async def _me(token: object, parts: Components, sub_id: str) -> str:
    """The user a ``me`` subscription's token proves. The token is not logged or echoed."""
    if not isinstance(token, str):
        raise Refused(sub_id, "token_missing", "a me view needs the user's auth_token")
    try:
        return await identify(parts.verifier, token)
    except ScoreboardError as exc:  # Unauthorized, or Unavailable (keys cannot be fetched)
        raise Refused(sub_id, exc.code, exc.message) from None


@router.websocket("/ws")
async def subscriptions_socket(websocket: WebSocket) -> None:
    """Many subscriptions over one socket (docs/live.md)."""
    address = await admit(websocket, None)
    if address is None:
        return
    metrics: Metrics = websocket.app.state.metrics
    caps: SocketCaps = websocket.app.state.socket_caps
    metrics.ws_connections.inc()
    try:
        await _serve(websocket)
    finally:
        caps.release(address)
        metrics.ws_connections.dec()


async def _serve(websocket: WebSocket) -> None:
    parts: Components = websocket.app.state.components
    metrics: Metrics = websocket.app.state.metrics
    views = parts.views
    assert views is not None
    await websocket.accept()
    farewell: Farewell = websocket.app.state.farewell
    if farewell.shutting_down:
        await websocket.close(code=1001, reason="server shutting down")
        return
    outbox = Outbox()
    farewell.add(outbox)
    sink = sink_of(websocket.scope)
    if sink is not None:  # messages go straight out while the socket keeps up
        write = sink.write
        outbox.direct = lambda message: write(text_frame(message.encode()))
    frames = (
        None
        if frames_guarded(websocket.scope)
        else FrameBudget(parts.settings.ws_max_frames_per_second)
    )
    reader = asyncio.create_task(_read(websocket, outbox, views, parts, frames, sink, metrics))
    writer = asyncio.create_task(_write(websocket, outbox, sink, parts.settings.ws_send_timeout))
    closed = asyncio.create_task(outbox.wait_closed())
    try:
        await asyncio.wait({writer, closed}, return_when=asyncio.FIRST_COMPLETED)
        if writer.done() and isinstance(writer.exception(), TimeoutError):
            metrics.ws_closed.labels("slow_consumer").inc()
            log.warning(
                "closing a socket that could not be written to for %.0f s",
                parts.settings.ws_send_timeout,
                extra={"event": "ws_slow_consumer", "client": client_address(websocket)},
            )
        elif outbox.overflowed:
            metrics.ws_closed.labels("overflow").inc()
            log.warning(
                "closing a socket whose event queue overflowed",
                extra={"event": "ws_overflow", "client": client_address(websocket)},
            )
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await websocket.close(code=1013, reason="too far behind: resubscribe")
        elif outbox.going_away:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await websocket.close(code=1001, reason="going away")
    finally:
        views.close(outbox)
        for task in (reader, writer, closed):
            task.cancel()
        for task in (reader, writer, closed):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        farewell.discard(outbox)


async def _write(
    websocket: WebSocket, outbox: Outbox, sink: FrameSink | None, send_timeout: float
) -> None:
    """Send what waits in the outbox. With a sink, nothing is awaited between taking a message
    and writing it, so the outbox's direct writes can never overtake one."""
    try:
        if sink is None:
            while (message := await outbox.next()) is not None:
                async with asyncio.timeout(send_timeout):
                    await websocket.send_text(message)
            return
        while await outbox.ready():
            async with asyncio.timeout(send_timeout):
                await sink.wait_writable()
            message = outbox.take()
            if message is not None and not sink.write(text_frame(message.encode())):
                break  # closed: the reader sees the disconnect
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away mid-send
    finally:
        outbox.close()


async def _read(
    websocket: WebSocket,
    outbox: Outbox,
    views: LiveViews,
    parts: Components,
    frames: FrameBudget | None,
    sink: FrameSink | None,
    metrics: Metrics,
) -> None:
    """The client's messages, one at a time, in order (a subscribe is answered before the next
    message is read). ``frames``: the budget counted here when the server does not."""
    flooded = False
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                flooded = sink is not None and sink.closed_for == "frame_flood"
                break
            if frames is not None and not frames.take():
                await websocket.close(code=1008, reason="too many frames")
                flooded = True
                break
            text = message.get("text")
            if text is None:
                text = message.get("bytes") or b""
            await handle(text, outbox, views, parts)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    except Exception:  # a bug: the traceback, never the message (it may hold a token)
        log.exception("a /ws client message could not be handled; closing the socket")
    finally:
        outbox.close()
    if flooded:
        metrics.ws_closed.labels("frame_flood").inc()
        log.warning(
            "closed a socket that sent too many frames",
            extra={"event": "ws_frame_flood", "client": client_address(websocket)},
        )
