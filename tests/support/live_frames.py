"""Every message the live tests receive, held to the AsyncAPI document (``/asyncapi.json``).

:func:`check` validates one frame received on a live channel against the payload schema of its
``type`` on that channel, as the document states it: a frame of a type the document does not
list for the channel, or one that does not match its schema, is an ``AssertionError`` in the test
that received it. The validators are built once per session from ``scoreboard.web.asyncapi``
(the code that serves the document), so the check costs a JSON parse and a compiled schema's
walk per frame.

Where frames are read:

- over real sockets with the ``websockets`` client (tests/e2e, tests/faults, support helpers):
  :func:`installed` wraps ``ClientConnection.recv`` for the whole session (tests/conftest.py),
  which ``async for message in ws`` uses too; the channel is the connection's request path, and
  a path that is no live channel (a test's own app) is not checked;
- in-process over raw ASGI messages (tests/api): the helpers that read ``websocket.send``
  messages call :func:`check` themselves.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
from websockets.asyncio.client import ClientConnection

from scoreboard.web import asyncapi

_BOARD_PATH = re.compile(r"/ws/boards/[^/]+")


def channel_of(path: str) -> str | None:
    """The document's channel (its key under ``channels``) served at ``path``, or ``None``."""
    path = path.split("?", 1)[0]
    if path == asyncapi.SEED_CHANNEL:
        return "scoreboard"
    if path == asyncapi.SUBSCRIPTIONS_CHANNEL:
        return "subscriptions"
    if _BOARD_PATH.fullmatch(path):
        return "board"
    return None


@functools.cache
def validators() -> dict[str, dict[str, Any]]:
    """Per channel, per ``type``: the validator of what the server sends with that type (the
    messages of the document's ``send`` operations)."""
    doc = asyncapi.document()
    root = {"components": doc["components"]}
    found: dict[str, dict[str, Any]] = {}
    for operation in doc["operations"].values():
        if operation["action"] != "send":
            continue
        channel = operation["channel"]["$ref"].rsplit("/", 1)[1]
        for ref in operation["messages"]:
            key = ref["$ref"].rsplit("/", 1)[1]
            name = doc["channels"][channel]["messages"][key]["$ref"].rsplit("/", 1)[1]
            payload = doc["components"]["messages"][name]["payload"]
            kind = payload["properties"]["type"]["const"]
            schema = {**root, "$ref": f"#/components/messages/{name}/payload"}
            found.setdefault(channel, {})[kind] = jsonschema_rs.validator_for(schema)
    return found


def check(path: str, frame: str | bytes) -> None:
    """``frame``, received on ``path``, is one of the messages the document says the server
    sends there (nothing is checked on a path that is no live channel)."""
    channel = channel_of(path)
    if channel is None:
        return
    shown = frame[:500]
    try:
        message = json.loads(frame)
    except ValueError:
        raise AssertionError(f"{path} sent a frame that is not JSON: {shown!r}") from None
    kind = message.get("type") if isinstance(message, dict) else None
    validator = validators()[channel].get(kind) if isinstance(kind, str) else None
    if validator is None:
        raise AssertionError(
            f"{path} sent a message whose type /asyncapi.json does not list for channel "
            f"{channel!r}: {shown!r}"
        )
    errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(message)]
    if errors:
        raise AssertionError(
            f"{path} sent a {kind} that does not match /asyncapi.json: {'; '.join(errors)}\n"
            f"{shown!r}"
        )


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """While open, every frame a ``websockets`` client receives on a live channel is checked."""
    original = ClientConnection.recv

    async def recv(self: ClientConnection, decode: bool | None = None) -> Any:
        data = await original(self, decode)
        request = self.request
        if request is not None:
            check(request.path, data)
        return data

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ClientConnection, "recv", recv)
        yield
