"""The AsyncAPI document of the live channels (``/asyncapi.json``): served, accepted by the
official parser, and true to what the server sends and accepts.

Every frame the live tests receive is validated against it (tests/support/live_frames.py); here,
each message the document lists is also produced by the server's own code and validated, so the
document lists no message the server never sends, and a drifted frame is shown to fail.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest

from scoreboard.events import BoardChanged, EncodedBoard
from scoreboard.model import RankedEntry
from scoreboard.web import asyncapi
from tests.api.conftest import Api
from tests.api.test_subscriptions import connected, settle
from tests.support import live_frames
from tests.support.services import unavailable
from tests.support.timing import scaled
from tests.support.tokens import token

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "tests" / "support" / "asyncapi_check.mjs"
PARSER = ROOT / "node_modules" / "@asyncapi" / "parser" / "package.json"


async def served(api: Api) -> dict[str, Any]:
    response = await api.client.get(asyncapi.PATH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


async def test_the_document_is_served(api: Api) -> None:
    document = await served(api)
    assert document["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {"/ws/scoreboard", "/ws/boards/{board}", "/ws"}
    assert document == asyncapi.document()


def parse(path: Path) -> subprocess.CompletedProcess[str]:
    """``@asyncapi/parser`` on the document in ``path`` (skipped without node and the parser,
    failed so under CI)."""
    node = shutil.which("node")
    if node is None:
        unavailable("node is not installed (the AsyncAPI parser runs on it)")
    if not PARSER.is_file():
        unavailable(f"no @asyncapi/parser at {PARSER.parent} (make test installs it with npm)")
    assert node is not None
    return subprocess.run(
        [node, str(CHECK), str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
    )


async def test_the_official_parser_accepts_the_served_document(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "asyncapi.json"
    path.write_bytes((await api.client.get(asyncapi.PATH)).content)
    result = parse(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "parsed: AsyncAPI 3.0.0" in result.stdout
    assert "11 messages" in result.stdout, result.stdout


def test_the_parser_check_fails_on_a_broken_document(tmp_path: Path) -> None:
    """The check can fail: an operation naming a message its channel does not carry."""
    broken = json.loads(json.dumps(asyncapi.document()))
    del broken["channels"]["subscriptions"]["messages"]["error"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    result = parse(path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Error" in result.stdout, result.stdout


def payload_validator(name: str) -> Any:
    document = asyncapi.document()
    schema = {
        "components": document["components"],
        "$ref": f"#/components/messages/{name}/payload",
    }
    return jsonschema_rs.validator_for(schema)


def test_every_message_has_a_payload_schema_and_a_valid_example() -> None:
    messages = asyncapi.document()["components"]["messages"]
    assert set(messages) == {
        "Snapshot",
        "ScoreUpdate",
        "BoardSnapshot",
        "BoardScoreUpdate",
        "PeriodStarted",
        "Subscribe",
        "Unsubscribe",
        "ViewSnapshot",
        "ViewUpdate",
        "MeEvent",
        "Error",
    }
    for name, message in messages.items():
        validator = payload_validator(name)
        assert message["examples"], name
        for example in message["examples"]:
            assert validator.is_valid(example["payload"]), (name, example)


def test_the_push_channels_messages_are_the_ones_the_server_encodes() -> None:
    """SNAPSHOT, SCORE_UPDATE and PERIOD_STARTED as the server encodes them (once per board
    state, for both channels) match the document, and the document lists no other."""
    rows = (RankedEntry(1, "bob", "Bob", 30), RankedEntry(2, "ada", "ada", -5))
    update = BoardChanged("weekly", 7, "ada", -5, rows, period="2026-W48")
    started = BoardChanged("weekly", 8, "", 0, (), period="2026-W49", previous="2026-W48")
    seen = set()
    for event, initial in ((update, True), (update, False), (started, False)):
        encoded = EncodedBoard.build(event, initial=initial)
        for path, encoding in (
            ("/ws/scoreboard", encoded.seed),
            ("/ws/boards/weekly", encoded.board),
        ):
            for text in (encoding.snapshot, encoding.update):
                if text is not None:
                    live_frames.check(path, text)
                    seen.add((live_frames.channel_of(path), orjson.loads(text)["type"]))
    listed = {
        (channel, kind)
        for channel, kinds in live_frames.validators().items()
        if channel != "subscriptions"
        for kind in kinds
    }
    assert seen == listed


async def test_the_subscriptions_messages_are_the_ones_the_server_sends(seeded: Api) -> None:
    """snapshot, update, event and error from the app itself (each frame is checked as it is
    read), and the document lists no other."""
    async with connected(seeded) as ws:
        await ws.subscribe(id="top", board="main", view="top", limit=2)
        await ws.subscribe(id="me", board="main", view="me", auth_token=token("alice"))
        await ws.subscribe(id="x", board="nope", view="top")
        await seeded.ok("alice", 25, action_id="up", name="Alice")  # 35: rank 3 to rank 1
        await settle(seeded)
        for _ in range(3):  # top's update, me's update, me's rank_changed
            await ws.receive()
        await ws.nothing()
        kinds = {orjson.loads(text)["type"] for text in ws.sent_texts}
    assert kinds == set(live_frames.validators()["subscriptions"])


@pytest.mark.parametrize(
    ("path", "frame", "why"),
    [
        ("/ws/scoreboard", '{"type": "SCORE_UPDATE", "data": {"user_id": "a", "new_score": 1, '
         '"rankings": []}}', "seq"),
        ("/ws/scoreboard", '{"type": "SNAPSHOT", "data": {"board": "main", "period": "all", '
         '"rankings": [], "seq": 1}}', "board"),
        ("/ws/boards/main", '{"type": "SNAPSHOT", "data": {"rankings": [], "seq": 1}}', "board"),
        ("/ws", '{"type": "update", "id": "s", "board": "main", "period": "all", "seq": 0, '
         '"rows": []}', "seq"),
        ("/ws", '{"type": "error", "id": null, "error": "oops", "message": "x"}', "error"),
        ("/ws", '{"type": "SNAPSHOT", "data": {"rankings": [], "seq": 1}}', "does not list"),
        ("/ws/boards/main", "not json", "not JSON"),
    ],
)  # fmt: skip
def test_a_frame_that_drifts_from_the_document_fails(path: str, frame: str, why: str) -> None:
    with pytest.raises(AssertionError, match=why):
        live_frames.check(path, frame)


def test_frames_of_other_paths_are_not_checked() -> None:
    live_frames.check("/elsewhere", "anything")
    assert live_frames.channel_of("/ws/boards/main?x=1") == "board"


SUBSCRIBES = [
    {"view": "top"},
    {"view": "top", "limit": 100},
    {"view": "top", "limit": 101},
    {"view": "top", "limit": 0},
    {"view": "top", "limit": "5"},
    {"view": "top", "limit": 5.0},
    {"view": "around", "user_id": "alice"},
    {"view": "around", "user_id": "alice", "radius": 25},
    {"view": "around", "user_id": "alice", "radius": 26},
    {"view": "around", "user_id": "al ice"},
    {"view": "around"},
    {"view": "me"},
    {"view": "sideways"},
    {"board": "no such", "view": "top"},
    {"board": "nope", "view": "top"},
]


@pytest.mark.parametrize("fields", SUBSCRIBES, ids=str)
async def test_the_subscribe_rules_are_the_documented_ones(
    seeded: Api, fields: dict[str, Any]
) -> None:
    """A subscribe the document calls valid is answered with a snapshot; one it calls invalid
    with an error (a board that is not served is valid in form: the document cannot know)."""
    message = {"type": "subscribe", "id": "s", "board": "main", **fields}
    documented = payload_validator("Subscribe").is_valid(message)
    async with connected(seeded) as ws:
        answer = await ws.subscribe(**{k: v for k, v in message.items() if k != "type"})
    if fields.get("board") == "nope":
        assert documented
        assert answer["error"] == "unknown_board"
        return
    assert documented is (answer["type"] == "snapshot"), answer
