"""SCOREBOARD_ALLOWED_ORIGINS."""

from __future__ import annotations

from scoreboard.web.guards.origins import AllowedOrigins


def test_unset_allows_any_origin() -> None:
    origins = AllowedOrigins.parse("")
    assert origins.any
    assert origins.allows("https://anyone.example")
    assert origins.as_list() == ["*"]


def test_listed_origins_compare_as_browsers_send_them() -> None:
    origins = AllowedOrigins.parse(" https://Good.example/ ,http://localhost:8000")
    assert origins.allows("https://good.example")
    assert origins.allows("http://localhost:8000")
    assert not origins.allows("https://evil.example")
    assert not origins.allows("https://good.example.evil.example")
    assert not origins.allows("http://good.example")  # another scheme is another origin
    assert not origins.allows("null")
    assert origins.allows(None)  # no Origin header: not a browser page
    assert origins.as_list() == ["http://localhost:8000", "https://good.example"]
