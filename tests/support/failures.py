"""No silent failures: what a host did wrong that the test did not say it expected.

A passing HTTP reply can hide a trigger that failed five times and left a poison message
(every model upload once did). The watch reads the host's own log for failed invocations
(`Executed 'Functions.<name>' (Failed, ...)`) and counts the messages that reached any
`*-poison` queue since the host started; a test that expects some says so first.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueServiceClient

FAILED = re.compile(r"Executed 'Functions\.([^']+)' \(Failed")


class FailureWatch:
    def __init__(self, queues: QueueServiceClient) -> None:
        self.read_log: Callable[[], str] = lambda: ""  # set once the host has started
        self._queues = queues
        self._baseline = self._poison_counts()
        self._expected_invocations: Counter[str] = Counter()
        self._expected_poison: Counter[str] = Counter()
        self._reported_invocations: Counter[str] = Counter()
        self._reported_poison: Counter[str] = Counter()

    def expect(
        self,
        function: str | None = None,
        invocations: int = 0,
        *,
        poison_queue: str | None = None,
        poison: int = 0,
    ) -> None:
        """Declare failures this test causes on purpose (they are then not reported)."""
        if function is not None:
            self._expected_invocations[function] += invocations
        if poison_queue is not None:
            self._expected_poison[poison_queue] += poison

    def _poison_counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for queue in self._queues.list_queues():
            if queue.name.endswith("-poison"):
                try:
                    props = self._queues.get_queue_client(queue.name).get_queue_properties()
                except ResourceNotFoundError:
                    continue
                counts[queue.name] = props.approximate_message_count or 0
        return counts

    def unexpected(self) -> list[str]:
        """What went wrong beyond what was expected, each reported once."""
        problems = []
        failed = Counter(FAILED.findall(self.read_log()))
        for function, count in sorted(failed.items()):
            extra = count - self._expected_invocations[function]
            extra -= self._reported_invocations[function]
            if extra > 0:
                problems.append(f"{extra} unexpected failed invocation(s) of {function}")
                self._reported_invocations[function] += extra
        now = self._poison_counts()
        for queue in sorted(now):
            extra = now[queue] - self._baseline[queue] - self._expected_poison[queue]
            extra -= self._reported_poison[queue]
            if extra > 0:
                problems.append(f"{extra} unexpected message(s) in the poison queue {queue}")
                self._reported_poison[queue] += extra
        return problems

    def missing(self) -> list[str]:
        """Expected failures that did not happen (a test that expects one must see it)."""
        failed = Counter(FAILED.findall(self.read_log()))
        now = self._poison_counts()
        out = [
            f"expected {n} failed invocation(s) of {fn}, saw {failed[fn]}"
            for fn, n in self._expected_invocations.items()
            if failed[fn] < n
        ]
        out += [
            f"expected {n} message(s) in {queue}, saw {now[queue] - self._baseline[queue]}"
            for queue, n in self._expected_poison.items()
            if now[queue] - self._baseline[queue] < n
        ]
        return out
