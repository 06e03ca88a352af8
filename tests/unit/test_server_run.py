"""``scoreboard.server.run``: the uvicorn options, the version fence, and the app's independence
from uvicorn. (The protocols themselves: tests/e2e/test_server_http.py and
test_server_websocket.py.)"""

from __future__ import annotations

import functools
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scoreboard import cli
from scoreboard.server import run
from scoreboard.server.http import GuardedHttpProtocol
from scoreboard.server.limits import EdgeLimits
from scoreboard.server.websocket import FramedWebSocketProtocol
from scoreboard.settings import Settings
from tests.support.server import SECRET


def test_a_supported_version_uses_our_protocols() -> None:
    low, _ = run.SUPPORTED
    assert run.check_version(str(low), allow_untested=False)
    assert run.check_version(run.installed_uvicorn(), allow_untested=False)


@pytest.mark.parametrize("version", ["0.53.0", "0.55.0", "1.0.0"])
def test_another_version_is_refused_with_one_line_naming_the_range(version: str) -> None:
    with pytest.raises(run.UnsupportedServer) as refused:
        run.check_version(version, allow_untested=False)
    message = str(refused.value)
    assert "\n" not in message
    assert f"uvicorn {version}" in message
    assert ">=0.54.0,<0.55" in message
    assert "SCOREBOARD_ALLOW_UNTESTED_SERVER=1" in message


def test_another_version_is_allowed_on_stock_protocols_when_asked() -> None:
    assert run.check_version("9.9.9", allow_untested=True) is False


def test_the_options_bind_the_settings_limits_to_our_protocols_and_pickle() -> None:
    settings = Settings(
        header_timeout=3, body_timeout=4, max_header_bytes=2048, ws_max_frames_per_second=7
    )
    options = run.uvicorn_options(settings)
    assert options["proxy_headers"] is False
    for key, cls in (("http", GuardedHttpProtocol), ("ws", FramedWebSocketProtocol)):
        bound = options[key]
        assert isinstance(bound, functools.partial)
        assert bound.func is cls
        assert bound.keywords["limits"] == EdgeLimits(
            header_timeout=3,
            body_timeout=4,
            idle_timeout=3,  # at most the header timeout
            max_header_bytes=2048,
            ws_frames_per_second=7,
        )
    # uvicorn's workers are spawned: the options travel pickled.
    assert pickle.loads(pickle.dumps(options["http"])).keywords  # noqa: S301 (our own bytes) == options["http"].keywords


def test_stock_options_still_turn_uvicorns_proxy_headers_off() -> None:
    options = run.uvicorn_options(Settings(), guarded=False)
    assert (options["http"], options["ws"]) == ("httptools", "websockets-sansio")
    assert options["proxy_headers"] is False


@pytest.fixture
def serve_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """``scoreboard serve`` in this process with ``uvicorn.run`` replaced: the calls it got."""
    for name, value in {
        "SCOREBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "SCOREBOARD_DATA_DIR": str(tmp_path),
        "SCOREBOARD_JWT_SECRET": SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    calls: list[dict[str, Any]] = []
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append(options))
    return calls


def test_serve_refuses_an_untested_uvicorn_with_one_line(
    serve_env: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(run, "installed_uvicorn", lambda: "0.60.0")
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "uvicorn 0.60.0 is not supported" in err
    assert serve_env == []  # nothing was started


def test_serve_on_an_untested_uvicorn_when_allowed_uses_stock_protocols_and_says_what_is_off(
    serve_env: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(run, "installed_uvicorn", lambda: "0.60.0")
    monkeypatch.setenv("SCOREBOARD_ALLOW_UNTESTED_SERVER", "1")
    cli.main(["serve"])  # configures logging to stderr, as the command does
    (options,) = serve_env
    assert (options["http"], options["ws"]) == ("httptools", "websockets-sansio")
    err = capsys.readouterr().err.splitlines()
    (text,) = [line for line in err if "WARNING" in line and "scoreboard.server.run" in line]
    assert "scoreboard.server.run: uvicorn 0.60.0 is untested" in text
    for protection in run.OFF_WITHOUT_OUR_PROTOCOLS:
        assert protection in text


def test_serve_on_the_supported_uvicorn_uses_our_protocols(
    serve_env: list[dict[str, Any]],
) -> None:
    cli.main(["serve"])
    (options,) = serve_env
    assert options["http"].func is GuardedHttpProtocol
    assert options["ws"].func is FramedWebSocketProtocol
    assert options["proxy_headers"] is False


def test_the_app_imports_and_builds_without_uvicorn_installed(tmp_path: Path) -> None:
    """The fence: only scoreboard.server imports uvicorn."""
    script = f"""
import importlib.abc, sys

class NoUvicorn(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "uvicorn" or name.startswith("uvicorn."):
            raise ModuleNotFoundError(f"No module named {{name!r}}")
        return None

sys.meta_path.insert(0, NoUvicorn())
from scoreboard.settings import Settings
from scoreboard.web.app import create_app
app = create_app(Settings(database_url="sqlite:///{tmp_path}/db.sqlite", jwt_secret="{SECRET}"))
assert not any(m == "uvicorn" or m.startswith("uvicorn.") for m in sys.modules), "imported"
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
