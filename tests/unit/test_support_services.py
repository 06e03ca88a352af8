"""The rule for tests that need PostgreSQL or Redis: skip when absent, fail when CI=true."""

from __future__ import annotations

import pytest

from tests.support import services


def test_an_absent_service_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Redis not reachable"):
        services.unavailable("Redis not reachable at redis://127.0.0.1:1")


def test_an_absent_service_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        services.unavailable("PostgreSQL not reachable at postgresql://127.0.0.1:1")


def test_reachability_is_checked_on_the_configured_port(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.server import free_port

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(services, "REDIS", f"redis://127.0.0.1:{free_port()}")
    with pytest.raises(pytest.skip.Exception):
        services.require_redis()
