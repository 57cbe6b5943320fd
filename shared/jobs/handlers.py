"""Which handler runs each job kind: a table the features fill.

The job machinery knows kinds and their payload shapes, not what a kind does. The
composition root (``function_app.py``) registers one builder per kind; a handler is built
from it the first time a job of its kind runs, so a process builds only what it uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from shared.jobs.kinds import JobKind

Handler = Callable[[str, BaseModel], dict[str, Any]]

_builders: dict[str, Callable[[], Handler]] = {}


def register(kind: JobKind, build: Callable[[], Handler]) -> None:
    """Run jobs of `kind` with the handler `build()` returns (called once, when needed)."""
    _builders[kind.value] = build


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
