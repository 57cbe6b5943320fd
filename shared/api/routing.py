"""One declaration per HTTP route: it registers the function on its Blueprint and
records the route's request and response shapes for the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import azure.functions as func
from pydantic import BaseModel


@dataclass(frozen=True)
class RouteDoc:
    name: str
    route: str
    methods: tuple[str, ...]
    auth: str
    summary: str
    tags: tuple[str, ...]
    request: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = (400,)
    path_enums: dict[str, tuple[str, ...]] = field(default_factory=dict)


ROUTES: list[RouteDoc] = []


def http_route(
    bp: func.Blueprint,
    route: str,
    methods: list[str],
    *,
    summary: str,
    tags: tuple[str, ...] = (),
    auth: func.AuthLevel = func.AuthLevel.FUNCTION,
    request: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    errors: tuple[int, ...] = (400,),
    path_enums: dict[str, tuple[str, ...]] | None = None,
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
            )
        )
        return bp.route(route=route, methods=methods, auth_level=auth)(fn)

    return register
