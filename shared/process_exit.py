"""Work a process must finish before it ends: at a normal exit and at SIGTERM.

Python runs ``atexit`` functions at a normal exit, but a SIGTERM left to its default
action ends the process without them, and SIGTERM is how hosts stop a worker. So a
flush registered here runs at either: ``on_exit`` registers it, and ``install_sigterm``
(called once by the app, on the main thread) makes SIGTERM run the flushes and then end
the process as its default action would.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_flushes: list[Callable[[], None]] = []


def on_exit(flush: Callable[[], None]) -> None:
    """Run `flush` when the process exits normally or on SIGTERM (once installed)."""
    atexit.register(flush)
    _flushes.append(flush)


def install_sigterm() -> bool:
    """Install the SIGTERM handler; True if installed. Only from the main thread (the
    only one that may), and only over the default action: a host that handles SIGTERM
    itself keeps its handler (and its own exit runs ``atexit``)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return False
    signal.signal(signal.SIGTERM, _on_sigterm)
    return True


def _on_sigterm(signum: int, frame: Any) -> None:
    for flush in list(_flushes):
        try:
            flush()
        except Exception:  # one failed flush must not keep the others from running
            log.warning("exit flush %r failed", flush, exc_info=True)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)  # end as the default action would
