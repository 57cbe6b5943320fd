"""What each job kind carries and which handler runs it: a table the features fill.

The job machinery knows the kinds' names, not their payloads or what they do. The
composition root (``function_app.py``) registers, per kind, the payload's shape (checked
at submit and when a message is read) and a builder of its handler; a handler is built
the first time a job of its kind runs, so a process builds only what it uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from shared.jobs.kinds import JobKind

Handler = Callable[[str, BaseModel], dict[str, Any]]

_builders: dict[str, Callable[[], Handler]] = {}
_payloads: dict[str, type[BaseModel]] = {}


def register(kind: JobKind, payload: type[BaseModel], build: Callable[[], Handler]) -> None:
    """Jobs of `kind` carry a `payload` and run with the handler `build()` returns
    (called once, when the first such job runs)."""
    _payloads[kind.value] = payload
    _builders[kind.value] = build


def payload_shape(kind: str) -> type[BaseModel]:
    """The payload shape of a registered kind."""
    from shared.errors import ConfigurationError

    shape = _payloads.get(kind)
    if shape is None:
        raise ConfigurationError(f"job kind {kind!r} has no registered payload")
    return shape


def registered() -> frozenset[str]:
    return frozenset(_builders)


class Handlers(dict[str, Handler]):
    """The handlers by kind, each built on first use."""

    def __missing__(self, kind: str) -> Handler:
        build = _builders.get(kind)
        if build is None:
            raise KeyError(kind)
        handler = self[kind] = build()
        return handler

    def __contains__(self, kind: object) -> bool:
        return kind in _builders or dict.__contains__(self, kind)
