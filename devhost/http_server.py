"""HTTP triggers: a plain ASGI app on uvicorn that routes requests to functions.

Order of checks, as in the Functions host: route (404), method (405), auth level (401),
body size (413, on Content-Length and again while the body streams in). Then the request
becomes a `func.HttpRequest`, the function runs (sync ones in the thread pool) and its
`func.HttpResponse` goes back. An unhandled exception is a 500 with a short body; the
traceback goes to the log.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func
import uvicorn

from .auth import KeyRing, presented_key
from .invocation import Invoker
from .loader import FunctionSpec
from .otel_sdk import http_span
from .route_templates import MethodNotAllowed, Router

log = logging.getLogger("devhost.http")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

DEFAULT_BODY_LIMIT = 104_857_600
_TEXT_TYPES = ("application/json", "application/xml", "application/javascript")


class BodyTooLarge(Exception):
    """The request body passed FUNCTIONS_REQUEST_BODY_SIZE_LIMIT."""


@dataclass(frozen=True)
class HttpTarget:
    """What a route serves."""

    spec: FunctionSpec
    auth_level: str


def http_target(spec: FunctionSpec) -> tuple[str, HttpTarget, list[str] | None]:
    """(route template, target, methods) for an http-triggered function."""
    trigger = spec.trigger
    route = trigger.get("route") or spec.name
    methods = [m.upper() for m in trigger.get("methods") or []] or None
    return route, HttpTarget(spec, str(trigger.get("authLevel", "FUNCTION")).upper()), methods


def content_type(response: func.HttpResponse) -> str:
    """The Content-Type for a response's mimetype and charset."""
    mimetype = response.mimetype or "text/plain"
    if mimetype.startswith("text/") or mimetype in _TEXT_TYPES:
        return f"{mimetype}; charset={response.charset or 'utf-8'}"
    return mimetype


def response_parts(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A function's return value → status, headers and body."""
    if isinstance(result, func.HttpResponse):
        headers = [
            (k, v)
            for k, v in result.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding")
        ]
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", content_type(result)))
        return int(result.status_code), headers, result.get_body()
    if result is None:
        return 204, [], b""
    if isinstance(result, str | bytes):
        body = result.encode("utf-8") if isinstance(result, str) else result
        return 200, [("Content-Type", "text/plain; charset=utf-8")], body
    raise TypeError(f"an HTTP function returned {type(result).__name__}, not func.HttpResponse")


def _url(scope: Scope, headers: dict[str, str], query_string: str) -> str:
    """The full request URL as the client sent it (path still percent-encoded)."""
    host = headers.get("host") or "{}:{}".format(*(scope.get("server") or ("localhost", 80)))
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else scope["path"]
    url = f"{scope.get('scheme', 'http')}://{host}{path}"
    return f"{url}?{query_string}" if query_string else url


def _join(pairs: list[tuple[str, str]], sep: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for key, value in pairs:
        merged[key] = f"{merged[key]}{sep}{value}" if key in merged else value
    return merged


class HttpApp:
    """The ASGI application behind the functions' routes."""

    def __init__(
        self,
        router: Router,
        keys: KeyRing,
        invoker: Invoker,
        executor: Executor,
        *,
        route_prefix: str,
        body_limit: int = DEFAULT_BODY_LIMIT,
        custom_headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.router = router
        self.keys = keys
        self.invoker = invoker
        self.executor = executor
        self.prefix = route_prefix.strip("/")
        self.body_limit = body_limit
        self.custom_headers = custom_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, self._with_custom_headers(send))

    def _with_custom_headers(self, send: Send) -> Send:
        """host.json customHeaders go on every response the function did not set them on."""
        if not self.custom_headers:
            return send

        async def sending(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message["headers"]}
                message["headers"] = list(message["headers"]) + [
                    (k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in self.custom_headers
                    if k.lower().encode("latin-1") not in present
                ]
            await send(message)

        return sending

    def _relative(self, path: str) -> str | None:
        """The path under the route prefix, or None when outside it."""
        path = path.strip("/")
        if not self.prefix:
            return path
        low, prefix = path.lower(), self.prefix.lower()
        if low == prefix:
            return ""
        if low.startswith(prefix + "/"):
            return path[len(prefix) + 1 :]
        return None

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"].upper()
        relative = self._relative(scope["path"])
        found = self.router.match(relative, method) if relative is not None else None
        if found is None:
            if scope["path"] in ("", "/") and method in ("GET", "HEAD"):
                await _reply(send, 200, b"Your Functions app is up and running (local host).")
            else:
                await _reply(send, 404, b"")
            return
        if isinstance(found, MethodNotAllowed):
            await _reply(send, 405, b"", [("Allow", ", ".join(found.allowed))])
            return
        target: HttpTarget = found.route.target
        raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        headers = _join([(k.lower(), v) for k, v in raw_headers], ", ")
        query_string = scope.get("query_string", b"").decode("latin-1")
        query = _join(parse_qsl(query_string, keep_blank_values=True), ",")
        if not self.keys.allows(target.auth_level, presented_key(headers, query)):
            await _reply(send, 401, b"")
            return
        try:
            body = await self._read_body(headers, receive)
        except BodyTooLarge:
            await _reply(send, 413, b"Request body too large", close=True)
            return
        except ValueError:
            await _reply(send, 400, b"Bad Content-Length")
            return
        request = func.HttpRequest(
            method,
            _url(scope, headers, query_string),
            headers=headers,
            params=query,
            route_params=found.params,
            body=body,
        )
        data = {**found.params, **{f"Query.{k}": v for k, v in query.items()}}
        spec = target.spec
        template = found.route.template.template.strip("/")
        route = "/" + "/".join(part for part in (self.prefix, template) if part)
        span = http_span(method, request.url, route, headers)
        try:
            result = await self.invoker.invoke_async(
                spec, ({spec.trigger["name"]: request}, data), self.executor, span
            )
        except Exception:  # logged with its traceback by the invoker
            await _reply(send, 500, b"Internal Server Error")
            return
        try:
            status, out_headers, out_body = response_parts(result)
        except TypeError as exc:
            log.error("Functions.%s: %s", spec.name, exc)
            await _reply(send, 500, b"Internal Server Error")
            return
        await _reply(send, status, out_body, out_headers, head=method == "HEAD")

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        declared = headers.get("content-length")
        if declared is not None and int(declared) > self.body_limit:
            raise BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.body_limit:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


async def _reply(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[str, str]] | None = None,
    *,
    head: bool = False,
    close: bool = False,
) -> None:
    pairs = list(headers or [])
    if body and not any(k.lower() == "content-type" for k, _ in pairs):
        pairs.append(("Content-Type", "text/plain; charset=utf-8"))
    pairs.append(("Content-Length", str(len(body))))
    if close:
        pairs.append(("Connection", "close"))
    raw = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in pairs]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class HostServer(uvicorn.Server):
    """uvicorn without its own signal handling: the host owns SIGINT/SIGTERM and shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
