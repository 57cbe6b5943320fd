"""Queue messages through ingestion, and the accounting that proves none was lost or run
twice: every job row `succeeded` once, exactly the rows sent stored, the poison queue empty.

Messages are plain JSON dropped on the queue with the Storage SDK, as any tool would
(host.json sets `messageEncoding: none`).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from reliability import hostlog

QUEUE = "ingestion-jobs"
POISON = f"{QUEUE}-poison"
QUEUE_FUNCTION = "run_ingestion_job"
DIM = 8


@dataclass(frozen=True)
class Plan:
    """Which jobs one run sends: ids and entity ids are unique to the run."""

    run: str
    messages: int
    rows_per_message: int

    @classmethod
    def new(cls, messages: int, rows_per_message: int) -> Plan:
        return cls(uuid.uuid4().hex[:8], messages, rows_per_message)

    @property
    def model_id(self) -> str:
        return f"reliability-ingest-{self.run}"

    @property
    def id_pattern(self) -> str:
        """A LIKE pattern for this run's job ids."""
        return f"rel-{self.run}-%"

    def job_id(self, i: int) -> str:
        return f"rel-{self.run}-{i:06d}"

    def message(self, i: int) -> str:
        items = [
            {"entity_id": f"m{i}-r{r}", "vector": [float(i % 97), float(r), *[0.5] * (DIM - 2)]}
            for r in range(self.rows_per_message)
        ]
        return json.dumps(
            {
                "job_id": self.job_id(i),
                "kind": "embeddings",
                "schema_version": 1,
                "payload": {"model_id": self.model_id, "items": items},
            }
        )

    @property
    def rows(self) -> int:
        return self.messages * self.rows_per_message


def send(connection_string: str, plan: Plan, threads: int = 8) -> float:
    """Drop every message on the queue; returns the seconds it took."""
    from azure.storage.queue import QueueClient

    client = QueueClient.from_connection_string(connection_string, QUEUE)
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(lambda i: client.send_message(plan.message(i)), range(plan.messages)):
            pass
    return time.monotonic() - started


def finished(db: Path, plan: Plan) -> int:
    """How many of the run's jobs reached a final state (succeeded or failed)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        (count,) = conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE id LIKE ? AND status IN ('succeeded', 'failed')",
            (plan.id_pattern,),
        ).fetchone()
    return int(count)


def wait(db: Path, plan: Plan, *, timeout: float, stall: float = 60) -> float:
    """Until every job finished, `timeout` passed, or nothing finished for `stall` seconds
    (a lost message never finishes). Returns the seconds waited."""
    started = last_change = time.monotonic()
    seen = -1
    while True:
        now = time.monotonic()
        done = finished(db, plan)
        if done >= plan.messages or now - started > timeout or now - last_change > stall:
            return now - started
        if done != seen:
            seen, last_change = done, now
        time.sleep(0.5)


@dataclass(frozen=True)
class Accounting:
    sent: int
    succeeded: int  # job rows `succeeded`
    failed: int  # job rows `failed`
    unfinished: int  # job rows still queued or running
    missing: int  # sent, but no job row at all
    extra_runs: int  # attempts beyond one, summed over the jobs
    retried: int  # failed invocations of the queue function (explain extra runs)
    wrong_results: int  # succeeded, but the result does not say every row was inserted
    rows_sent: int
    rows_stored: int
    poison: int  # messages in the poison queue
    left_in_queue: int
    seconds: float = 0.0

    @property
    def lost(self) -> int:
        """Jobs that did not succeed, plus rows sent that are not stored."""
        return (self.sent - self.succeeded) + max(0, self.rows_sent - self.rows_stored)

    @property
    def doubled(self) -> int:
        """Runs no failure explains, jobs whose last run found its rows already there, and
        rows stored that were never sent."""
        unexplained = max(0, self.extra_runs - self.retried)
        return unexplained + self.wrong_results + max(0, self.rows_stored - self.rows_sent)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.doubled == 0 and self.poison == 0


def account(
    db: Path, plan: Plan, *, host_log: str, poison: int, left_in_queue: int, seconds: float = 0
) -> Accounting:
    """Read the job rows and stored embeddings of `plan` back from the host's database."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        statuses = dict(
            conn.execute(
                "SELECT status, COUNT(*) FROM jobs WHERE id LIKE ? GROUP BY status",
                (plan.id_pattern,),
            ).fetchall()
        )
        (extra_runs,) = conn.execute(
            "SELECT COALESCE(SUM(MAX(attempts - 1, 0)), 0) FROM jobs WHERE id LIKE ?",
            (plan.id_pattern,),
        ).fetchone()
        (wrong,) = conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE id LIKE ? AND status = 'succeeded' "
            "AND COALESCE(json_extract(result, '$.inserted'), -1) != ?",
            (plan.id_pattern, plan.rows_per_message),
        ).fetchone()
        (stored,) = conn.execute(
            "SELECT COUNT(*) FROM embeddings WHERE model_id = ?", (plan.model_id,)
        ).fetchone()
    rows = sum(statuses.values())
    return Accounting(
        sent=plan.messages,
        succeeded=statuses.get("succeeded", 0),
        failed=statuses.get("failed", 0),
        unfinished=rows - statuses.get("succeeded", 0) - statuses.get("failed", 0),
        missing=max(0, plan.messages - rows),
        extra_runs=int(extra_runs),
        retried=hostlog.read(host_log).failed[QUEUE_FUNCTION],
        wrong_results=int(wrong),
        rows_sent=plan.rows,
        rows_stored=int(stored),
        poison=poison,
        left_in_queue=left_in_queue,
        seconds=seconds,
    )


def queue_depths(connection_string: str) -> tuple[int, int]:
    """Messages left in the ingestion queue and in its poison queue (0 if it does not exist)."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.queue import QueueServiceClient

    service = QueueServiceClient.from_connection_string(connection_string)
    depths = []
    for name in (QUEUE, POISON):
        try:
            props = service.get_queue_client(name).get_queue_properties()
            depths.append(props.approximate_message_count or 0)
        except ResourceNotFoundError:
            depths.append(0)
    return depths[0], depths[1]


def run(
    connection_string: str, db: Path, plan: Plan, *, read_log: Callable[[], str], timeout: float
) -> Accounting:
    """Send, wait, count."""
    send_seconds = send(connection_string, plan)
    waited = wait(db, plan, timeout=timeout)
    left, poison = queue_depths(connection_string)
    return account(
        db,
        plan,
        host_log=read_log(),
        poison=poison,
        left_in_queue=left,
        seconds=send_seconds + waited,
    )
