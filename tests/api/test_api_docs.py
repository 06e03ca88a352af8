"""``/docs``: Swagger UI served whole by this service, under a policy that lets it reach no other
host. (tests/browser/test_api_docs.py renders it in Chromium.)"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

from tests.api.conftest import Api, assert_error

ORIGIN = "http://scoreboard.test"


class _Links(HTMLParser):
    """Every URL an element of the page would load: src, href (stylesheets, icons)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.urls.append(value)


async def test_every_file_of_the_page_is_served_by_this_origin(api: Api) -> None:
    page = await api.client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    parser = _Links()
    parser.feed(page.text)
    assert len(parser.urls) >= 4  # icon, stylesheet, Swagger UI, its start script
    for url in parser.urls:
        absolute = urljoin(ORIGIN + "/docs", url)
        assert urlsplit(absolute).netloc == urlsplit(ORIGIN).netloc, url
        response = await api.client.get(absolute)
        assert response.status_code == 200, url
        assert response.content, url
    kinds = {urlsplit(url).path: url for url in parser.urls}
    bundle = await api.client.get("/docs/swagger-ui-bundle.js")
    assert "/docs/swagger-ui-bundle.js" in kinds
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in bundle.content
    css = await api.client.get("/docs/swagger-ui.css")
    assert css.headers["content-type"].startswith("text/css")


async def test_the_start_script_loads_the_schema_from_here_and_no_validator(api: Api) -> None:
    script = (await api.client.get("/static/docs.js")).text
    assert 'url: "/openapi.json"' in script
    assert "validatorUrl: null" in script  # else a badge is fetched from validator.swagger.io
    assert not re.search(r"https?://", script)


async def test_the_page_may_reach_this_origin_only(api: Api) -> None:
    csp = (await api.client.get("/docs")).headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src"):
        assert directives[name] == "'self'", name  # no inline script, no other host
    assert directives["img-src"] == "'self' data:"  # Swagger UI's icons are data: URIs
    assert directives["frame-ancestors"] == "'none'"


async def test_swagger_files_revalidate_with_their_etag(api: Api) -> None:
    first = await api.client.get("/docs/swagger-ui-bundle.js")
    again = await api.client.get(
        "/docs/swagger-ui-bundle.js", headers={"if-none-match": first.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "/redoc",
        "/docs/oauth2-redirect",
        "/docs/oauth2-redirect.html",
        "/docs/favicon-32x32.png",
        "/docs/__init__.py",
        "/docs/..%2Fmain.py",
        "/static/docs.html",
    ],
)
async def test_nothing_else_is_served(api: Api, path: str) -> None:
    assert_error(await api.client.get(path), 404)
