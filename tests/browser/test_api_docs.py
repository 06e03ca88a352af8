"""``/docs`` in a real Chromium: Swagger UI renders every operation and can call the API, and
the page asks no other host for anything (its CSP would refuse it: a refusal is a console error,
so there must be none)."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from tests.browser import chromium

chromium.require()

from playwright.sync_api import expect  # noqa: E402

from tests.browser.conftest import Api, Tab  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

pytestmark = pytest.mark.browser


def test_swagger_ui_renders_every_operation_from_this_origin_alone(
    server: ServerProcess, api: Api, tab: Tab
) -> None:
    api.update("alice", 7)
    document = httpx.get(server.base_url + "/openapi.json").json()
    operations = sum(len(methods) for methods in document["paths"].values())
    console: list[str] = []
    tab.page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)

    tab.page.goto(server.base_url + "/docs")
    expect(tab.page.locator(".opblock")).to_have_count(operations)
    expect(tab.page.locator(".opblock-summary-path").first).to_be_visible()

    top10 = tab.page.locator(".opblock", has_text="/api/scores/top10")
    top10.locator(".opblock-summary").click()
    top10.get_by_role("button", name="Try it out").click()
    top10.get_by_role("button", name="Execute").click()
    answer = top10.locator(".live-responses-table tbody .response")
    expect(answer.locator(".response-col_status")).to_have_text("200")
    expect(answer.locator(".response-col_description")).to_contain_text('"alice"')

    here = urlsplit(server.base_url).netloc
    assert tab.requests, "the page made no request at all"
    assert {urlsplit(url).netloc for url in tab.requests} == {here}, tab.requests
    assert "/docs/swagger-ui-bundle.js" in {urlsplit(url).path for url in tab.requests}
    assert console == []
    assert tab.errors == []
