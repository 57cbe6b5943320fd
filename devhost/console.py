"""What the host prints: timestamped log lines and the Core Tools-like startup banner."""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import time
from collections.abc import Iterable
from logging.handlers import QueueHandler, QueueListener

from .http_server import http_target
from .loader import FunctionSpec

_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "information": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "none": logging.CRITICAL + 10,
}


#: The logger ``say`` prints through, and the record flag that leaves out the timestamp.
_CONSOLE = "devhost.console"
_PLAIN = "devhost_plain"
_listener: QueueListener | None = None
atexit.register(lambda: stop_logging())


class _UtcFormatter(logging.Formatter):
    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, _PLAIN, False):
            return record.getMessage()
        return super().format(record)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def level(name: str) -> int:
    """A host.json log level name ("Information", "Warning", ...) → logging level."""
    return _LEVELS.get(name.strip().lower(), logging.INFO)


def setup_logging(default: str = "Information", azure: str = "Warning") -> None:
    """Log to stdout as `[time] message`; the Azure SDK's per-request logs stay quiet.

    Callers only queue their records: one listener thread writes them. A stream handler
    on the root logger would serialise every request thread on its lock (9% of the
    host's samples at 16 concurrent searches), where the Functions host logs off the
    worker's time. ``say`` goes through the same queue, so lines keep their order."""
    global _listener
    stop_logging()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    writer = logging.StreamHandler(sys.stdout)
    writer.setFormatter(_UtcFormatter("[%(asctime)s] %(message)s"))
    _listener = QueueListener(records, writer)
    _listener.start()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(QueueHandler(records))
    root.setLevel(level(default))
    console = logging.getLogger(_CONSOLE)
    for handler in list(console.handlers):
        console.removeHandler(handler)
    console.addHandler(QueueHandler(records))
    console.setLevel(logging.DEBUG)  # printed whatever the host's log level
    console.propagate = False
    logging.getLogger("azure").setLevel(level(azure))
    logging.getLogger("uvicorn").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def stop_logging() -> None:
    """Write every queued line and stop the writer thread (the host calls it before it
    exits; it also runs at interpreter exit)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


def describe(spec: FunctionSpec, base_url: str) -> str:
    """One banner line: `  name: [GET] http://127.0.0.1:7071/api/route` or the trigger type."""
    if spec.trigger_type != "httpTrigger":
        source = spec.trigger.get("queueName") or spec.trigger.get("path") or ""
        return f"  {spec.name}: {spec.trigger_type} ({source})"
    route, _, methods = http_target(spec)
    shown = ",".join(methods) if methods else "*"
    return f"  {spec.name}: [{shown}] {base_url}/{route.lstrip('/')}"


def banner(specs: Iterable[FunctionSpec], base_url: str, skipped: Iterable[tuple[str, str]]) -> str:
    """The function list printed at start, HTTP functions first as Core Tools does."""
    ordered = sorted(specs, key=lambda s: (s.trigger_type != "httpTrigger", s.name))
    lines = ["", "Functions:", ""]
    lines += [describe(spec, base_url) for spec in ordered]
    for name, reason in skipped:
        lines.append(f"  {name}: not running ({reason})")
    lines.append("")
    return "\n".join(lines)


def say(text: str) -> None:
    """Print a line as it is, in order with the log lines (stdout may be a pipe)."""
    if _listener is None:
        print(text, flush=True)
    else:
        logging.getLogger(_CONSOLE).info(text, extra={_PLAIN: True})
