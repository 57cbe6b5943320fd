"""One declaration per HTTP route: it registers the function on its Blueprint and
records the route's request and response shapes for the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import azure.functions as func
from pydantic import BaseModel

# A shape, or a function returning it: lets a route document a model whose module
# is too heavy to import when function_app.py loads (numpy, onnxruntime).
ModelRef = type[BaseModel] | Callable[[], type[BaseModel]]


@dataclass(frozen=True)
class RouteDoc:
    name: str
    route: str
    methods: tuple[str, ...]
    auth: str
    summary: str
    tags: tuple[str, ...]
    request: ModelRef | None = None
    query: type[BaseModel] | None = None
    response: ModelRef | None = None
    status: int = 200
    errors: tuple[int, ...] = (400,)
    path_enums: dict[str, tuple[str, ...]] = field(default_factory=dict)
    error_body: ModelRef | None = None  # the errors' shape; None: the app's ErrorBody
    bearer: bool = False  # checks Authorization: Bearer itself (shared.http.api_keys)


ROUTES: list[RouteDoc] = []


def resolve(ref: ModelRef | None) -> type[BaseModel] | None:
    if ref is None or isinstance(ref, type):
        return ref
    return ref()


def http_route(
    bp: func.Blueprint,
    route: str,
    methods: list[str],
    *,
    summary: str,
    tags: tuple[str, ...] = (),
    auth: func.AuthLevel = func.AuthLevel.FUNCTION,
    request: ModelRef | None = None,
    query: type[BaseModel] | None = None,
    response: ModelRef | None = None,
    status: int = 200,
    errors: tuple[int, ...] = (400,),
    path_enums: dict[str, tuple[str, ...]] | None = None,
    error_body: ModelRef | None = None,
    bearer: bool = False,
) -> Callable[[Callable], Callable]:
    def register(fn: Callable) -> Callable:
        ROUTES.append(
            RouteDoc(
                name=fn.__name__,
                route=route,
                methods=tuple(m.upper() for m in methods),
                auth=auth.value if hasattr(auth, "value") else str(auth),
                summary=summary,
                tags=tags,
                request=request,
                query=query,
                response=response,
                status=status,
                errors=errors,
                path_enums=path_enums or {},
                error_body=error_body,
                bearer=bearer,
            )
        )
        return bp.route(route=route, methods=methods, auth_level=auth)(fn)

    return register
