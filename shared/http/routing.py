"""One declaration per HTTP route: it registers the function on its Blueprint and
records the route's request and response shapes for the OpenAPI document."""

from __future__ import annotations

import functools
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


def bearer_route(
    bp: func.Blueprint,
    route: str,
    methods: list[str],
    *,
    summary: str,
    tags: tuple[str, ...] = (),
    request: ModelRef | None = None,
    response: ModelRef | None = None,
    errors: tuple[int, ...] = (),
) -> Callable[[Callable], Callable]:
    """An ``/api/v1`` route for the clients that send ``Authorization: Bearer <key>``
    (the openai SDK and those built on it). The host reads keys only from
    ``x-functions-key`` and ``?code=``, so the route is anonymous at the host and the key
    is checked here, before the function runs (``shared.http.api_keys``); every error,
    the 401 included, answers in OpenAI's shape."""
    from shared.http.api_keys import require_api_key
    from shared.http.errors import openai_errors
    from shared.http.shapes import OpenAIErrorBody

    def register(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def checked(req: func.HttpRequest) -> func.HttpResponse:
            require_api_key(req.headers)
            return fn(req)

        return http_route(
            bp,
            route,
            methods,
            summary=summary,
            tags=tags,
            auth=func.AuthLevel.ANONYMOUS,
            request=request,
            response=response,
            errors=tuple(sorted({401, *errors})),
            error_body=OpenAIErrorBody,
            bearer=True,
        )(openai_errors(checked))

    return register
