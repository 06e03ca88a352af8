"""``GET /docs``: Swagger UI on ``/openapi.json``, every file of it served by this service.

FastAPI's own page loads Swagger UI from a CDN: on a server without internet it stays blank, and
it broke the rule that a page of this service asks no other host for anything. Swagger UI's two
files come from the ``fastapi-swagger`` package, which ships the swagger-ui-dist release it tracks
(its version is pinned in constraints.txt); the page (``static/docs.html``) and its start script
(``static/docs.js``) are ours. They are read on the first request and kept in memory, served with
an ETag like the live page's files.

The Content-Security-Policy lets the page run scripts, load styles and send requests (the schema,
"Try it out") to this origin only, so the start script is a served file, not an inline one (a
hash would have to change with every edit of it). Images may also be ``data:`` URIs: Swagger UI's
stylesheet draws its icons that way, and a ``data:`` image is no request to any host.

ReDoc (``/redoc``) is off: no maintained package ships its bundle apart from a FastAPI wrapper,
and it needs inline styles and ``blob:`` workers, which this policy refuses. One page is enough.
"""

from __future__ import annotations

import functools
import logging
from importlib import resources

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from scoreboard.web.endpoints.page import Asset, asset, serve, static_file

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

PACKAGE = "fastapi_swagger"
FILES = ("swagger-ui-bundle.js", "swagger-ui.css")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@functools.cache
def swagger_file(name: str) -> Asset | None:
    """One of Swagger UI's files from the package, or ``None`` when it does not ship it."""
    try:
        body = (resources.files(PACKAGE) / "resources" / name).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        log.error("Swagger UI's %s is not in the %s package: /docs cannot work", name, PACKAGE)
        return None
    return asset(name, body)


@router.get("/docs")
async def docs(request: Request) -> Response:
    return serve(request, static_file("docs.html"), CSP)


@router.get("/docs/{name}")
async def swagger(request: Request, name: str) -> Response:
    found = swagger_file(name) if name in FILES else None
    if found is None:
        raise HTTPException(status_code=404)
    return serve(request, found)
