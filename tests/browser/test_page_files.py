"""The page's HTTP side, without a browser: paths, headers, caching, and no outside URL."""

from __future__ import annotations

import re
from importlib import resources

import httpx
import pytest
from fastapi import FastAPI

from scoreboard.web.endpoints import page


async def _get(path: str, **headers: str) -> httpx.Response:
    app = FastAPI()
    app.include_router(page.router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        return await c.get(path, headers=headers)


@pytest.mark.parametrize(("path", "marker"), [("/", "<h1>"), ("/embed", 'class="embed"')])
async def test_pages_are_html_locked_to_their_own_origin(path: str, marker: str) -> None:
    response = await _get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert marker in response.text
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "connect-src 'self'" in csp
    assert "x-frame-options" not in response.headers  # embedding is the point


async def test_the_admin_page_is_never_stored_nor_framed() -> None:
    """It holds no secret (the key is pasted into it), but an operator's page has no business in
    a shared cache, and a framed one could be clicked through by another site."""
    response = await _get("/admin")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>Scoreboard admin</h1>" in response.text
    assert response.headers["cache-control"] == "no-store"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self';" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "<script>" not in response.text
    assert " style=" not in response.text


async def test_a_known_etag_gets_304_without_a_body() -> None:
    first = await _get("/static/board.js")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/javascript")
    again = await _get("/static/board.js", **{"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    stale = await _get("/static/board.js", **{"If-None-Match": '"something-else"'})
    assert stale.status_code == 200


@pytest.mark.parametrize(
    ("path", "media_type", "marker"),
    [
        ("/client.js", "text/javascript; charset=utf-8", "export function subscribe("),
        ("/client.d.ts", "application/typescript; charset=utf-8", "export function subscribe("),
    ],
)
async def test_the_browser_client_is_served_at_the_root_like_the_page_files(
    path: str, media_type: str, marker: str
) -> None:
    """An interface other sites import: a fixed address, revalidated (never stale), typed."""
    response = await _get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert marker in response.text
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in response.headers  # a policy is a document's
    again = await _get(path, **{"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


def _exports(text: str) -> set[str]:
    return set(re.findall(r"^export (?:function|class) (\w+)", text, re.M))


def test_the_client_declares_exactly_what_it_exports() -> None:
    """client.d.ts is written by hand (no build step): a name added to one and not the other
    would be a type that lies."""
    static = resources.files("scoreboard.web") / "static"
    code = (static / "client.js").read_text(encoding="utf-8")
    types = (static / "client.d.ts").read_text(encoding="utf-8")
    assert _exports(code) == _exports(types) == {
        "connect", "subscribe", "SubscriptionError", "retryDelay", "socketUrl",
    }  # fmt: skip
    assert code.startswith('// @ts-self-types="./client.d.ts"')  # how Deno finds the types


@pytest.mark.parametrize(
    "path",
    [
        "/static/nope.js",
        "/static/index.html",
        "/static/admin.html",
        "/static/..%2fpage.py",
        "/static/client.js",  # only at /client.js: it finds its server from its own address
        "/static/client.d.ts",
    ],
)
async def test_only_the_shipped_files_are_served(path: str) -> None:
    assert (await _get(path)).status_code == 404


def test_the_page_is_not_in_the_api_schema() -> None:
    from scoreboard.web.app import create_app

    paths = create_app().openapi()["paths"]
    assert not {"/", "/embed", "/admin", "/static/{name}", "/client.js", "/client.d.ts"} & set(
        paths
    )


def test_no_static_file_names_another_host() -> None:
    static = resources.files("scoreboard.web") / "static"
    for entry in static.iterdir():
        text = entry.read_text(encoding="utf-8")
        # The SVG's XML namespace is a name, not a request.
        text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]", text, re.I), entry.name
