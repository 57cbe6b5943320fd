"""The host's span per invocation, with the real SDK: the function runs inside it on its
worker thread (sync) or on the event loop (async), continuing an incoming traceparent."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from devhost.bindings import OutputWriter
from devhost.invocation import Invoker
from devhost.loader import FunctionSpec
from devhost.otel_sdk import http_span, queue_span
from tests.telemetry.otel import Otel

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def _seen() -> tuple[int, int, str]:
    ctx = trace.get_current_span().get_span_context()
    return ctx.trace_id, ctx.span_id, threading.current_thread().name


def sync_fn(req: object) -> object:
    return _seen()


async def async_fn(req: object) -> object:
    return _seen()


def broken(req: object) -> object:
    raise ValueError("no")


def _spec(name: str, func: object) -> FunctionSpec:
    return FunctionSpec(name, func, {"type": "httpTrigger", "name": "req"})  # type: ignore[arg-type]


def test_each_invocation_runs_inside_its_own_span_on_any_thread(otel: Otel) -> None:
    headers = {"traceparent": f"00-{TRACE}-{PARENT}-01"}

    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        invoker = Invoker(loop, None, OutputWriter(None, "none"), ".")
        pool = ThreadPoolExecutor(2, thread_name_prefix="worker")
        bound = ({"req": None}, {})
        span = http_span("GET", "http://h/api/x", "/api/x", headers)
        try:
            results = [
                await invoker.invoke_async(_spec("sync_fn", sync_fn), bound, pool, span),
                await invoker.invoke_async(_spec("async_fn", async_fn), bound, pool, span),
                # a queue listener's thread calling an async function: context handed over
                await loop.run_in_executor(
                    pool,
                    invoker.invoke,
                    _spec("async_queue", async_fn),
                    lambda: bound,
                    queue_span("q", "m-1"),
                ),
            ]
            try:
                await invoker.invoke_async(_spec("broken", broken), bound, pool, span)
            except ValueError:
                results.append("raised")
            return results
        finally:
            pool.shutdown()

    sync_seen, async_seen, queued_seen, raised = asyncio.run(main())
    assert raised == "raised"
    spans = {s.attributes["faas.name"]: s for s in otel.finished() if "faas.name" in s.attributes}
    server = spans["sync_fn"]
    assert server.kind is SpanKind.SERVER and server.name == "GET /api/x"
    assert f"{server.context.trace_id:032x}" == TRACE
    assert f"{server.parent.span_id:016x}" == PARENT
    assert sync_seen[:2] == (server.context.trace_id, server.context.span_id)
    assert sync_seen[2].startswith("worker")  # ran on a worker thread, inside the span
    assert async_seen[1] == spans["async_fn"].context.span_id
    queued = spans["async_queue"]
    assert queued.kind is SpanKind.CONSUMER and queued.parent is None  # queues: a new trace
    assert queued_seen[1] == queued.context.span_id
    failed = spans["broken"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["http.response.status_code"] == 500
    assert failed.events[0].attributes["exception.type"] == "ValueError"
