"""Running one invocation: bind, call, write outputs, log one line, track what is in flight.

Sync functions run on worker threads (as in the Python worker's thread pool); `async def`
functions run on the host's event loop. Outputs are written only after the function
returned, so a failed invocation writes nothing. Each invocation logs the line Core Tools
prints: `Executed 'Functions.<name>' (Succeeded|Failed, Id=<uuid>, Duration=<n>ms)`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import Any

from . import otel_sdk
from .bindings import OutputWriter, bind_inputs, collect_outputs, prepare_outputs
from .context import InvocationContext
from .loader import FunctionSpec
from .otel_sdk import SpanStart
from .storage_clients import StorageClients

log = logging.getLogger("devhost.invocation")

# What a trigger hands over: the trigger argument(s) and the binding data for expressions.
Bound = tuple[dict[str, Any], Mapping[str, Any]]


class Invoker:
    """Calls functions and keeps count of the invocations in flight."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        storage: StorageClients | None,
        writer: OutputWriter,
        function_directory: str,
    ) -> None:
        self._loop = loop
        self._storage = storage
        self._writer = writer
        self._directory = function_directory
        self._active = 0
        self._active_lock = threading.Lock()

    @property
    def active(self) -> int:
        """Invocations running now."""
        with self._active_lock:
            return self._active

    def _enter(self) -> tuple[str, float]:
        with self._active_lock:
            self._active += 1
        return str(uuid.uuid4()), time.monotonic()

    def _leave(self) -> None:
        with self._active_lock:
            self._active -= 1

    def _arguments(
        self, spec: FunctionSpec, invocation_id: str, bound: Bound
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        trigger_args, data = bound
        outs = prepare_outputs(spec)
        kwargs = {**trigger_args, **bind_inputs(spec, self._storage, data), **outs}
        if "context" in spec.parameters and "context" not in kwargs:
            kwargs["context"] = InvocationContext(invocation_id, spec.name, self._directory)
        return kwargs, outs

    def _log(self, spec: FunctionSpec, invocation_id: str, started: float, exc: Any) -> None:
        ms = round((time.monotonic() - started) * 1000)
        status = "Failed" if exc else "Succeeded"
        line = f"Executed 'Functions.{spec.name}' ({status}, Id={invocation_id}, Duration={ms}ms)"
        if exc is None:
            log.info(line)
        else:
            reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
            log.error("%s %s", line, reason, exc_info=exc)

    def invoke(
        self, spec: FunctionSpec, bind: Callable[[], Bound], span: SpanStart | None = None
    ) -> Any:
        """Run one invocation on the calling (worker) thread, inside its span (attached to
        this thread, so the function's spans are its children); raises if it failed."""
        with self._tracked(spec, span) as (invocation_id, current):
            bound = bind()
            kwargs, outs = self._arguments(spec, invocation_id, bound)
            if spec.is_async:
                # the coroutine runs on the loop: hand it this thread's context
                coroutine = _in_context(spec.func(**kwargs))
                result = asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()
            else:
                result = spec.func(**kwargs)
            self._writer.write_all(collect_outputs(spec, outs, result), bound[1])
            otel_sdk.set_result(current, result)
        return result

    async def invoke_async(
        self, spec: FunctionSpec, bound: Bound, executor: Executor, span: SpanStart | None = None
    ) -> Any:
        """Run one invocation for the event loop: sync functions go to `executor`."""
        if not spec.is_async:
            return await self._loop.run_in_executor(
                executor, self.invoke, spec, lambda: bound, span
            )
        with self._tracked(spec, span) as (invocation_id, current):
            if spec.inputs:
                kwargs, outs = await self._loop.run_in_executor(
                    executor, self._arguments, spec, invocation_id, bound
                )
            else:
                kwargs, outs = self._arguments(spec, invocation_id, bound)
            result = await spec.func(**kwargs)
            pairs = collect_outputs(spec, outs, result)
            if pairs:
                await self._loop.run_in_executor(executor, self._writer.write_all, pairs, bound[1])
            otel_sdk.set_result(current, result)
        return result

    @contextmanager
    def _tracked(self, spec: FunctionSpec, span: SpanStart | None) -> Iterator[tuple[str, Any]]:
        """One invocation's bookkeeping, sync or async alike: counted in flight, inside its
        span (marked failed on an error), and logged as Core Tools logs it."""
        invocation_id, started = self._enter()
        try:
            with otel_sdk.invocation(spec.name, invocation_id, span) as current:
                try:
                    yield invocation_id, current
                except BaseException:
                    otel_sdk.set_failed(current)
                    raise
        except BaseException as exc:
            self._log(spec, invocation_id, started, exc)
            raise
        else:
            self._log(spec, invocation_id, started, None)
        finally:
            self._leave()


def _in_context(coroutine: Any) -> Any:
    """`coroutine` wrapped to run under the OpenTelemetry context of the calling thread
    (captured now, while still on that thread), for the event loop to await."""
    from opentelemetry import context as otel_context

    ctx = otel_context.get_current()

    async def run() -> Any:
        token = otel_context.attach(ctx)
        try:
            return await coroutine
        finally:
            otel_context.detach(token)

    return run()
