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
- ``/api/admin`` takes an admin key (a second bearer scheme, required), and an adjustment's
  ``metric`` is one of the served metrics and its ``delta`` never 0.
- Every request body and every answer has an ``example`` (``web.endpoints.examples``), put in
  before the board routes are copied per board, so the copies have them too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI

from scoreboard.boards import DEFAULT_METRIC, BoardsConfig
from scoreboard.periods import PERIOD_FORMS
from scoreboard.service import ScoreService
from scoreboard.settings import Settings
from scoreboard.web.endpoints import examples

UPDATE_PATH = "/api/scores/update"

Document = dict[str, Any]


def install(app: FastAPI, settings: Settings) -> None:
    generate = app.openapi
    built_for: list[BoardsConfig | None] = [None]

    def openapi() -> Document:
        # The document states the boards and metrics served, which a configuration applied
        # while serving changes: it is made again for each configuration.
        config = _served_config(app)
        if app.openapi_schema is None or built_for[0] is not config:
            app.openapi_schema = None
            document = generate()
            _drop_422(document)
            _no_null_query_parameters(document)
            _examples(document)
            if config is None:
                _delta_range(document, settings.min_delta, settings.max_delta)
            else:
                _metrics(document, config)
                _boards(document, config, app.state.components.service)
            _bearer(document)
            _admin(document, config)
            app.openapi_schema = document
            built_for[0] = config
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


def _examples(document: Document) -> None:
    """Each request body's and answer's example, where the route did not give one: a 200's
    and a body's by operation, an error's by status. One missing from ``examples`` stays
    missing (tests/api/test_openapi.py finds it) rather than failing the document."""
    for operation in operations(document):
        operation_id = operation.get("operationId", "")
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None and operation_id in examples.REQUESTS:
            body.setdefault("example", examples.REQUESTS[operation_id])
        for status, response in operation.get("responses", {}).items():
            for media_type, media in response.get("content", {}).items():
                if "example" in media or "examples" in media:
                    continue
                if status == "200":
                    answer = examples.ANSWERS.get(operation_id, {})
                    if media_type in answer:
                        media["example"] = answer[media_type]
                elif status.isdigit() and int(status) in examples.ERRORS:
                    code, message = examples.ERRORS[int(status)]
                    media["example"] = {"error": code, "message": message}


def _delta_range(document: Document, minimum: int, maximum: int) -> None:
    delta = update_body(document)["properties"]["score_delta"]
    delta["minimum"] = minimum
    delta["maximum"] = maximum
    if minimum <= 0 <= maximum:
        delta["not"] = {"const": 0}
    delta["description"] = f"non-zero, from {minimum} to {maximum} on this server"


def _served_config(app: FastAPI) -> BoardsConfig | None:
    components = getattr(app.state, "components", None)
    return None if components is None else components.service.config


def _metrics(document: Document, config: BoardsConfig) -> None:
    """``metric`` is one of the served metrics; ``score_delta`` lies in the union of their
    ranges, and, for each metric, in its own (``if``/``then``; no ``metric``, or ``null``, is
    ``points``)."""
    body = update_body(document)
    body["properties"]["metric"] = {
        "anyOf": [{"enum": sorted(config.metrics)}, {"type": "null"}],
        "description": "the metric this event belongs to (default points); it feeds every "
        "board of that metric",
    }
    for operation in operations(document):
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "metric" and parameter["in"] == "query":
                parameter["schema"]["enum"] = sorted(config.metrics)
                parameter["schema"].pop("pattern", None)
    metrics = list(config.metrics.values())
    _delta_range(document, min(m.min_delta for m in metrics), max(m.max_delta for m in metrics))
    if len(metrics) == 1:
        return
    rules = []
    for metric in metrics:
        condition: dict[str, Any] = {
            "properties": {"metric": {"const": metric.name}},
            "required": ["metric"],
        }
        if metric.name == DEFAULT_METRIC:
            condition = {
                "anyOf": [
                    condition,
                    {"not": {"required": ["metric"]}},
                    {"properties": {"metric": {"type": "null"}}, "required": ["metric"]},
                ]
            }
        then: dict[str, Any] = {"minimum": metric.min_delta, "maximum": metric.max_delta}
        rules.append({"if": condition, "then": {"properties": {"score_delta": then}}})
    body["allOf"] = rules


def _boards(document: Document, config: BoardsConfig, service: ScoreService) -> None:
    """Each ``/api/boards/{board}/...`` operation once per served board, with the board's own
    period form: whether an id is well formed depends on the board (a week on a daily board is
    a 400), which a ``{board}`` parameter could not say. An unknown board is an undocumented
    path (404)."""
    paths = document["paths"]
    generic = {path: ops for path, ops in paths.items() if "{board}" in path}
    default = service.default_board
    order = [default, *sorted(b for b in service.boards if b != default)]
    for path, methods in generic.items():
        del paths[path]
        for board_id in order:
            pattern = PERIOD_FORMS[config.boards[board_id].reset]
            current = service.boards[board_id].period.id
            concrete = {}
            for method, operation in methods.items():
                copy = copy_json(operation)
                copy["operationId"] = f"{operation['operationId']}_{board_id.replace('-', '_')}"
                copy["parameters"] = [
                    _with_period_form(p, pattern, current)
                    for p in operation.get("parameters", [])
                    if p["name"] != "board"
                ]
                concrete[method] = copy
            paths[path.replace("{board}", board_id)] = concrete
    _link_the_update(document, default)


_USER_READS = ("board_user", "board_around", "board_trajectory")


def _link_the_update(document: Document, default: str) -> None:
    """Links from an update's answer to the default board's reads about its user, as to the
    seed's: the stateful phase reaches them with a user who exists."""
    suffix = default.replace("-", "_")
    for methods in document["paths"].values():
        for operation in methods.values():
            if operation.get("operationId") != "update_score":
                continue
            links = operation["responses"]["200"].setdefault("links", {})
            for read in _USER_READS:
                name = f"{read}_{suffix}"
                links[name] = {
                    "operationId": name,
                    "parameters": {"user_id": "$response.body#/user_id"},
                }


def _with_period_form(parameter: dict[str, Any], pattern: str, current: str) -> dict[str, Any]:
    if parameter["name"] not in ("period", "before"):
        return parameter
    parameter = copy_json(parameter)
    parameter["schema"]["pattern"] = pattern
    parameter["schema"]["examples"] = [current]
    return parameter


def copy_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


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


ADMIN_PREFIX = "/api/admin/"


def _admin(document: Document, config: BoardsConfig | None) -> None:
    schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["adminKey"] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "sbk_...",
        "description": "An admin key (scoreboard admin-key create NAME).",
    }
    for path, methods in document["paths"].items():
        if not path.startswith(ADMIN_PREFIX):
            continue
        for operation in methods.values():
            operation["security"] = [{"adminKey": []}]
            if operation.get("operationId") != "admin_adjust":
                continue
            body = operation["requestBody"]["content"]["application/json"]["schema"]
            if "$ref" in body:
                name = body["$ref"].rsplit("/", 1)[-1]
                body = document["components"]["schemas"][name]
            body["properties"]["delta"]["not"] = {"const": 0}
            if config is not None:
                metric = body["properties"]["metric"]
                metric["enum"] = sorted(config.metrics)
                metric.pop("pattern", None)
