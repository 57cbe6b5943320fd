"""What the host's own log says about the run: failed invocations and tracebacks, which a
passing reply or a drained queue can hide."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

FAILED = re.compile(r"Executed 'Functions\.([^']+)' \(Failed")
SUCCEEDED = re.compile(r"Executed 'Functions\.([^']+)' \(Succeeded")


@dataclass(frozen=True)
class HostLog:
    invocations: int
    failed: Counter[str]  # failed invocations per function
    tracebacks: int

    @property
    def ok(self) -> bool:
        return not self.failed and self.tracebacks == 0


def read(text: str) -> HostLog:
    failed = Counter(FAILED.findall(text))
    invocations = len(SUCCEEDED.findall(text)) + sum(failed.values())
    return HostLog(invocations, failed, text.count("Traceback (most recent call last)"))
