"""The live page: ``GET /`` (the page), ``GET /embed`` (the board alone, for an ``<iframe>``),
``GET /admin`` (the operators' page), the few static files they use, and the browser client
(``GET /client.js``, an ES module, with its types at ``GET /client.d.ts``).

The files ship in the package (``web/static``) and are read once, when this module is first
imported, then served from memory with an ETag, so a reload costs a 304. There is no build step
and no outside request: the Content-Security-Policy allows only this origin, so even an edited
page cannot fetch a font or script from elsewhere. Neither board page sets ``frame-ancestors`` or
``X-Frame-Options``: being embedded anywhere is the point.

The client sits at the root rather than under ``/static/`` because it is an interface: a site
owner's page imports ``https://<this server>/client.js`` (a module script from another origin is
fetched with CORS, so that origin must be in ``SCOREBOARD_ALLOWED_ORIGINS``, as its sockets
already must), and the address must not move with the page's files. It is served like them:
an ETag, ``no-cache``, no policy of its own (a policy governs documents, not scripts).

``/admin`` holds no secret (the key is pasted into it and kept in the tab's ``sessionStorage``;
``/api/admin`` checks it), so it is public like the others. It differs in two headers: its
policy adds ``frame-ancestors 'none'``, since a framed admin page could be clicked through by
another site (clickjacking), and it is ``no-store`` like every admin answer, so no cache on the
way keeps a copy of an operator's page.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

router = APIRouter(include_in_schema=False)

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    # No type is registered for TypeScript; this is the one Deno reads declarations by.
    ".ts": "application/typescript; charset=utf-8",
}
# 'self' in connect-src also admits ws:/wss: to this host (CSP level 3, all current browsers).
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'"
)
_ADMIN_CSP = _CSP + "; frame-ancestors 'none'"
_CLIENT = frozenset({"client.js", "client.d.ts"})


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def asset(name: str, body: bytes) -> Asset | None:
    """A file to serve, typed by its name; ``None`` for a kind this service does not serve."""
    suffix = name[name.rfind(".") :]
    if suffix not in _TYPES:
        return None
    return Asset(body, _TYPES[suffix], '"' + hashlib.sha256(body).hexdigest()[:20] + '"')


def _load() -> dict[str, Asset]:
    assets: dict[str, Asset] = {}
    for entry in (resources.files("scoreboard.web") / "static").iterdir():
        found = asset(entry.name, entry.read_bytes()) if entry.is_file() else None
        if found is not None:
            assets[entry.name] = found
    return assets


_ASSETS = _load()


def serve(
    request: Request, asset: Asset, csp: str | None = None, cache: str = "no-cache"
) -> Response:
    """``asset`` with its ETag (a 304 when the client has it), and ``csp`` if given.

    ``cache``: ``no-cache`` (the default) revalidates each time, cheap (a 304) and never stale.
    """
    headers = {
        "ETag": asset.etag,
        "Cache-Control": cache,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if csp is not None:
        headers["Content-Security-Policy"] = csp
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def static_file(name: str) -> Asset:
    """One of ``web/static``'s files; a 404 if there is no such file."""
    found = _ASSETS.get(name)
    if found is None:
        raise HTTPException(status_code=404)
    return found


def _serve(request: Request, name: str) -> Response:
    return serve(request, static_file(name), _CSP if name.endswith(".html") else None)


@router.api_route("/", methods=["GET", "HEAD"])
async def page(request: Request) -> Response:
    return _serve(request, "index.html")


@router.api_route("/embed", methods=["GET", "HEAD"])
async def embed(request: Request) -> Response:
    return _serve(request, "embed.html")


@router.api_route("/admin", methods=["GET", "HEAD"])
async def admin(request: Request) -> Response:
    return serve(request, static_file("admin.html"), _ADMIN_CSP, cache="no-store")


@router.api_route("/client.js", methods=["GET", "HEAD"])
async def client(request: Request) -> Response:
    return _serve(request, "client.js")


@router.api_route("/client.d.ts", methods=["GET", "HEAD"])
async def client_types(request: Request) -> Response:
    return _serve(request, "client.d.ts")


@router.api_route("/static/{name}", methods=["GET", "HEAD"])
async def static(request: Request, name: str) -> Response:
    # The pages and the client have their own paths: the client finds its server from its own
    # address, so under /static/ it would look for the sockets there.
    if name.endswith(".html") or name in _CLIENT:
        raise HTTPException(status_code=404)
    return _serve(request, name)
