"""The local Functions host: wires settings, the app, storage, HTTP and listeners together.

Start-up order matters: local.settings.json → (Azurite) → import the app → storage
queues and containers → bind the HTTP port → listeners → "Host started". Shutdown on
SIGINT/SIGTERM: stop polling and scanning (messages received but not started go back to
the queue at once), stop accepting HTTP requests, let running invocations finish within
LOCAL_SHUTDOWN_GRACE_SECONDS, stop Azurite if this process started it, exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from . import azurite as azurite_mod
from .auth import KeyRing
from .bindings import OutputWriter
from .blob_listener import BlobScanner, sanitize_host_id
from .console import banner, say, setup_logging, stop_logging
from .hostconfig import HostConfig, load_host_config
from .http_server import DEFAULT_BODY_LIMIT, HostServer, HttpApp, http_target
from .invocation import Invoker
from .loader import FunctionSpec, LoadedApp, load_app
from .localsettings import load_local_settings
from .otel_sdk import Telemetry
from .otel_sdk import configure as configure_telemetry
from .queue_listener import DEFAULT_LEASE_SECONDS, QueueListener
from .route_templates import Router
from .startup import (
    bind_socket,
    maybe_start_azurite,
    partition_by_storage,
    prepare_storage,
    storage_bindings,
)
from .storage_clients import StorageClients

log = logging.getLogger("devhost")

HOST_ID_SETTING = "AzureFunctionsWebHost__hostid"  # as in Azure: overrides the host id


@dataclass(frozen=True)
class Options:
    """Command-line options."""

    script: Path
    host: str = "127.0.0.1"
    port: int | None = None
    with_azurite: bool = False


def _float_setting(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


class Host:
    """One running host: HTTP server, queue listeners and blob scanners."""

    def __init__(
        self,
        options: Options,
        config: HostConfig,
        specs: list[FunctionSpec],
        skipped: list[tuple],
        storage: StorageClients | None,
        sock: socket.socket,
    ) -> None:
        self.options = options
        self.config = config
        self.specs = specs
        self.skipped = skipped
        self.storage = storage
        self.sock = sock
        self.grace = _float_setting("LOCAL_SHUTDOWN_GRACE_SECONDS", 30.0)
        self.leftover = 0
        self._stop: asyncio.Event | None = None
        self._force: asyncio.Event | None = None

    def _on_signal(self, name: str) -> None:
        assert self._stop is not None and self._force is not None
        if self._stop.is_set():
            log.warning("%s again: not waiting for running invocations any longer", name)
            self._force.set()
        else:
            log.info("%s received: stopping the host", name)
            self._stop.set()

    async def _bounded(self, awaitable: asyncio.Future | asyncio.Task, deadline: float) -> bool:
        """Wait for `awaitable` until the deadline or a forced stop; True if it finished."""
        assert self._force is not None
        force = asyncio.ensure_future(self._force.wait())
        done, _ = await asyncio.wait(
            {awaitable, force},
            timeout=max(0.0, deadline - time.monotonic()),
            return_when=asyncio.FIRST_COMPLETED,
        )
        force.cancel()
        return awaitable in done

    async def serve(self) -> int:
        """Serve until a signal (or the HTTP server dies); 0 after a clean shutdown."""
        loop = asyncio.get_running_loop()
        self._stop, self._force = asyncio.Event(), asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig.name)
        threads = int(os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT") or 0) or min(
            32, (os.cpu_count() or 1) + 4
        )
        executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="http")
        writer = OutputWriter(self.storage, self.config.queues.message_encoding)
        folder = str(self.options.script.resolve().parent)
        invoker = Invoker(loop, self.storage, writer, folder)
        keys = KeyRing.from_settings(os.environ)
        if keys.generated:  # the app, in this process, accepts it as a Bearer key too
            os.environ["LOCAL_FUNCTION_KEYS"] = keys.function_keys[0]
        listeners = self._listeners(invoker)
        server = HostServer(
            uvicorn.Config(
                self._http_app(invoker, executor, keys),
                lifespan="off",
                log_config=None,
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=max(1, int(self.grace)),
            )
        )
        server_task = asyncio.create_task(server.serve(sockets=[self.sock]))
        while not server.started and not server_task.done():
            await asyncio.sleep(0.02)
        if server_task.done():
            log.error("the HTTP server did not start")
            return 1
        for listener in listeners:
            listener.start()
        self._announce(keys)
        stop_task = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({stop_task, server_task}, return_when=asyncio.FIRST_COMPLETED)
        stop_task.cancel()
        crashed = not self._stop.is_set()
        if crashed:
            log.error("the HTTP server stopped unexpectedly: stopping the host")
        await self._shutdown(server, server_task, listeners, invoker)
        executor.shutdown(wait=False, cancel_futures=True)
        return 1 if crashed else 0

    def _http_app(self, invoker: Invoker, executor: ThreadPoolExecutor, keys: KeyRing) -> HttpApp:
        router = Router()
        for spec in self.specs:
            if spec.trigger_type == "httpTrigger":
                route, target, methods = http_target(spec)
                router.add(route, target, methods)
        body_limit = int(os.environ.get("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT") or DEFAULT_BODY_LIMIT)
        return HttpApp(
            router,
            keys,
            invoker,
            executor,
            route_prefix=self.config.route_prefix,
            body_limit=body_limit,
            custom_headers=self.config.custom_headers,
        )

    async def _shutdown(
        self,
        server: HostServer,
        server_task: asyncio.Task,
        listeners: list[QueueListener | BlobScanner],
        invoker: Invoker,
    ) -> None:
        """Stop intake everywhere first, then wait (bounded) for what already runs."""
        say("Stopping host...")
        deadline = time.monotonic() + self.grace
        released = sum(listener.stop() for listener in listeners)
        if released:
            log.info("%d received message(s) not started went back to their queues", released)
        server.should_exit = True
        if not await self._bounded(server_task, deadline):
            server.force_exit = True
        for listener in listeners:
            joining = asyncio.ensure_future(
                asyncio.to_thread(listener.join, max(0.0, deadline - time.monotonic()))
            )
            await self._bounded(joining, deadline)
        self.leftover = invoker.active
        if self.leftover:
            log.warning(
                "%d invocation(s) still running after %.0f s; their messages return to the "
                "queue when their lease ends",
                self.leftover,
                self.grace,
            )
        say("Host stopped")

    def _listeners(self, invoker: Invoker) -> list[QueueListener | BlobScanner]:
        listeners: list[QueueListener | BlobScanner] = []
        config = self.config
        host_id = os.environ.get(HOST_ID_SETTING) or sanitize_host_id(
            self.options.script.resolve().parent.name
        )
        interval = _float_setting("LOCAL_BLOB_SCAN_INTERVAL_SECONDS", 1.0)
        lease = math.ceil(_float_setting("LOCAL_QUEUE_LEASE_SECONDS", DEFAULT_LEASE_SECONDS))
        for spec in self.specs:
            if spec.trigger_type == "queueTrigger":
                assert self.storage is not None
                listeners.append(QueueListener(spec, self.storage, invoker, config.queues, lease))
            elif spec.trigger_type == "blobTrigger":
                assert self.storage is not None
                listeners.append(
                    BlobScanner(
                        spec,
                        self.storage,
                        invoker,
                        host_id=sanitize_host_id(host_id),
                        interval=interval,
                        parallelism=config.blob_parallelism,
                        max_failures=config.poison_blob_threshold,
                        message_encoding=config.queues.message_encoding,
                    )
                )
        return listeners

    def _announce(self, keys: KeyRing) -> None:
        host, port = self.sock.getsockname()[:2]
        shown_host = f"[{host}]" if ":" in host else host
        base = f"http://{shown_host}:{port}"
        if self.config.route_prefix:
            base += "/" + self.config.route_prefix
        say(banner(self.specs, base, self.skipped))
        if keys.generated:
            say(
                "No LOCAL_FUNCTION_KEYS or LOCAL_MASTER_KEY set; function key for this run: "
                f"{keys.function_keys[0]}\n"
            )
        say("Host started")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (requirements-run.txt installs it where
    it builds: not on Windows), else asyncio's. With uvicorn's httptools parser it cuts
    the host's own time per request, so local load tests measure the app more than the
    local host (docs/concurrency.md has the figures)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(options: Options) -> int:
    """Run the host until SIGINT/SIGTERM; the process exit code."""
    script = options.script.resolve()
    folder = script.parent
    setup_logging()
    if not script.is_file():
        log.error("no such script: %s", script)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):  # until the event loop takes over
        signal.signal(sig, signal.default_int_handler)
    azurite: azurite_mod.Azurite | None = None
    storage: StorageClients | None = None
    host: Host | None = None
    telemetry = Telemetry()
    try:
        settings = load_local_settings(folder)
        config = load_host_config(folder)
        setup_logging(config.log_level, config.azure_log_level)
        telemetry = configure_telemetry()  # before the app's import, as the worker does
        if options.with_azurite:
            azurite = maybe_start_azurite(folder)
        try:
            loaded: LoadedApp = load_app(script, only=config.functions)
        except Exception:
            log.error("importing %s failed:\n%s", script, traceback.format_exc())
            return 1
        specs, skipped = partition_by_storage(loaded.functions)
        skipped = list(loaded.skipped) + skipped
        if any(storage_bindings(spec) for spec in specs):
            storage = StorageClients()
            prepare_storage(storage, specs)
        port = options.port or settings.local_http_port or 7071
        sock = bind_socket(options.host, port)
        host = Host(options, config, specs, skipped, storage, sock)
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            code = runner.run(host.serve())
    except KeyboardInterrupt:
        code = 0
    except (OSError, ValueError) as exc:
        log.error("the host could not start: %s", exc)
        code = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # clean-up is not interrupted
            signal.signal(sig, signal.SIG_IGN)
        if storage is not None:
            storage.close()
        telemetry.shutdown()  # flush what is still batched
        if azurite is not None:
            log.info("Stopping Azurite")
            azurite.stop()
    if host is not None and host.leftover:
        stop_logging()
        sys.stdout.flush()
        os._exit(code)  # worker threads still run: do not wait for them at exit
    return code
