"""The published OpenAPI document (``/openapi.json``): what FastAPI generates from the routes,
corrected where this service answers otherwise, and completed with what only the settings know.

The contract is that the document states every rule the server applies: a request it describes
as valid is not refused for its shape, and one it describes as invalid is refused (400, or 401
for a token). tests/api/test_openapi.py holds each rule to that, and tests/api/test_schema.py
runs Schemathesis against it. Changes here:

- FastAPI documents a 422 for every route with parameters; ours answer 400 (``web.errors``).
- ``score_delta``'s range is this server's (``SCOREBOARD_MIN_DELTA`` to ``..._MAX_DELTA``),
  never 0: the routes are declared before any settings exist, so it is filled in here.
- An optional query parameter is one that is left out: a query string cannot carry a null, so
  FastAPI's ``anyOf [..., {"type": "null"}]`` is reduced to the value's own schema.
- The update's token may come as ``Authorization: Bearer``: a security scheme, optional in the
  document (``{}``) because the body's ``auth_token`` can carry it instead, which OpenAPI has no
  way to say.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI

from scoreboard.settings import Settings

UPDATE_PATH = "/api/scores/update"

Document = dict[str, Any]


def install(app: FastAPI, settings: Settings) -> None:
    generate = app.openapi

    def openapi() -> Document:
        if app.openapi_schema is None:
            document = generate()
            _drop_422(document)
            _no_null_query_parameters(document)
            _delta_range(document, settings.min_delta, settings.max_delta)
            _bearer(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def operations(document: Document) -> Iterator[dict[str, Any]]:
    for methods in document.get("paths", {}).values():
        yield from methods.values()


def update_body(document: Document) -> dict[str, Any]:
    """The JSON Schema of the update's request body."""
    body = document["paths"][UPDATE_PATH]["post"]["requestBody"]
    schema: dict[str, Any] = body["content"]["application/json"]["schema"]
    return schema


def _drop_422(document: Document) -> None:
    for operation in operations(document):
        operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)


def _no_null_query_parameters(document: Document) -> None:
    for operation in operations(document):
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            branches = schema.get("anyOf")
            if parameter["in"] != "query" or not branches or {"type": "null"} not in branches:
                continue
            kept = [branch for branch in branches if branch != {"type": "null"}]
            if len(kept) == 1:
                rest = {key: value for key, value in schema.items() if key != "anyOf"}
                if rest.get("default", "") is None:  # "left out", said as a value
                    del rest["default"]
                parameter["schema"] = {**kept[0], **rest}


def _delta_range(document: Document, minimum: int, maximum: int) -> None:
    delta = update_body(document)["properties"]["score_delta"]
    delta["minimum"] = minimum
    delta["maximum"] = maximum
    if minimum <= 0 <= maximum:
        delta["not"] = {"const": 0}
    delta["description"] = f"non-zero, from {minimum} to {maximum} on this server"


def _bearer(document: Document) -> None:
    schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The user's token (or, in grant mode, a score grant). An auth_token in "
        "the body does the same and wins over this header.",
    }
    document["paths"][UPDATE_PATH]["post"]["security"] = [{"bearer": []}, {}]
