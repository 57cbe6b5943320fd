"""GET /api/openapi.json: OpenAPI 3.1, built from the route declarations."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import azure.functions as func
from pydantic.json_schema import models_json_schema

from shared.http.responses import json_response
from shared.http.routing import ROUTES, RouteDoc, http_route, resolve
from shared.http.shapes import ErrorBody

bp = func.Blueprint()

_PARAM = re.compile(r"\{\*?([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\??\}")
_STATUS_TEXT = {
    400: "Bad input: the error names the field and the reason.",
    401: "Missing or wrong key (a function key, or on /v1 routes a Bearer API key).",
    404: "Not found.",
    409: "Conflicts with what is stored.",
    413: "Request body too large.",
    422: "The input is well-formed but cannot be used (e.g. a broken model file).",
    429: "This instance has as much work queued as it accepts: retry after Retry-After seconds.",
    501: "This deployment cannot do it (e.g. its storage connection has no key).",
    503: "A dependency does not answer.",
}


def _path(doc: RouteDoc) -> tuple[str, list[dict[str, Any]]]:
    route = doc.route
    params = []
    for name, constraint in _PARAM.findall(route):
        schema: dict[str, Any] = (
            {"type": "integer"} if constraint in ("int", "long") else {"type": "string"}
        )
        if name in doc.path_enums:
            schema["enum"] = list(doc.path_enums[name])
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return "/" + _PARAM.sub(lambda m: "{" + m.group(1) + "}", route), params


def _query_params(doc: RouteDoc) -> list[dict[str, Any]]:
    if doc.query is None:
        return []
    schema = doc.query.model_json_schema(ref_template="#/components/schemas/{model}")
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def build() -> dict[str, Any]:
    models = {resolve(m) for d in ROUTES for m in (d.request, d.response) if m is not None}
    bodies = {ErrorBody} | {resolve(d.error_body) for d in ROUTES if d.error_body is not None}
    models |= bodies
    keyed = [(m, "serialization" if m in bodies else "validation") for m in models]
    _, top = models_json_schema(
        sorted(keyed, key=lambda x: x[0].__name__), ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    paths: dict[str, Any] = {}
    ref = lambda m: {"$ref": f"#/components/schemas/{m.__name__}"}  # noqa: E731
    for doc in ROUTES:
        path, params = _path(doc)
        params = params + _query_params(doc)
        for method in doc.methods:
            op: dict[str, Any] = {
                "operationId": doc.name if len(doc.methods) == 1 else f"{doc.name}_{method}",
                "summary": doc.summary,
                "tags": list(doc.tags),
                "parameters": params,
                "responses": {
                    str(doc.status): {
                        "description": "OK",
                        "content": {"application/json": {"schema": ref(resolve(doc.response))}}
                        if doc.response
                        else {},
                    }
                },
            }
            if doc.request is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": ref(resolve(doc.request))}},
                }
            errors = set(doc.errors)
            if doc.request is not None:
                errors.add(413)
            if doc.auth.upper() != "ANONYMOUS":
                errors.add(401)
                op["security"] = [{"functionKey": []}, {"functionKeyQuery": []}]
            if doc.bearer:
                errors.add(401)
                op["security"] = [{"bearerKey": []}]
            error_body = resolve(doc.error_body) or ErrorBody
            for code in sorted(errors):
                op["responses"][str(code)] = {
                    "description": _STATUS_TEXT.get(code, "Error"),
                    "content": {"application/json": {"schema": ref(error_body)}},
                }
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hartonomous Functions",
            "version": "1.0.0",
            "description": "Vector math, exact search, embeddings and inference.",
        },
        "servers": [{"url": "/api"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
                "bearerKey": {"type": "http", "scheme": "bearer"},
            },
        },
    }


@cache
def document() -> dict[str, Any]:
    return build()


@http_route(
    bp,
    "openapi.json",
    ["GET"],
    summary="This API's OpenAPI 3.1 document.",
    tags=("meta",),
    auth=func.AuthLevel.ANONYMOUS,
    errors=(),
)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(document())
