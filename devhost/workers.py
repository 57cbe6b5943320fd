"""What the queue and blob listeners share: a poller thread, a pool of invocations, and
a condition over the invocations still pending, so shutdown can wait for them."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class PendingWork:
    _thread: threading.Thread
    _executor: ThreadPoolExecutor
    _lock: threading.Condition
    _pending: Any  # a set or dict of futures still running

    def join(self, timeout: float) -> bool:
        """Wait for the poller and the running invocations; False if time ran out."""
        deadline = time.monotonic() + timeout
        self._thread.join(timeout)
        with self._lock:
            done = self._lock.wait_for(
                lambda: not self._pending, max(0.0, deadline - time.monotonic())
            )
        if done:
            self._executor.shutdown(wait=True)
        return done
