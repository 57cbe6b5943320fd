"""What the host prints: timestamped log lines and the Core Tools-like startup banner."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable

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


class _UtcFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def level(name: str) -> int:
    """A host.json log level name ("Information", "Warning", ...) → logging level."""
    return _LEVELS.get(name.strip().lower(), logging.INFO)


def setup_logging(default: str = "Information", azure: str = "Warning") -> None:
    """Log to stdout as `[time] message`; the Azure SDK's per-request logs stay quiet."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_UtcFormatter("[%(asctime)s] %(message)s"))
    root.addHandler(handler)
    root.setLevel(level(default))
    logging.getLogger("azure").setLevel(level(azure))
    logging.getLogger("uvicorn").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


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
    """Print a line now (stdout may be a pipe)."""
    print(text, flush=True)
