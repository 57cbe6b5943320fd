"""The host killed with SIGKILL mid-batch, then started again on the same database and
storage: unfinished messages run once their lease ends, a job left `running` by the dead
process is taken over, a job that already succeeded is not run again, and replays add no
duplicate rows."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
import uuid
from pathlib import Path

from azure.storage.queue import QueueServiceClient

from tests.support.host import start_app, stop_host

JOBS = 300
ROWS = 400  # per job: long enough that a kill lands mid-job


def _job(i: int, run: str) -> str:
    items = [{"entity_id": f"j{i}-r{r}", "vector": [float(i), float(r), 1.0]} for r in range(ROWS)]
    return json.dumps(
        {"job_id": f"{run}-{i}", "kind": "embeddings", "payload": {"model_id": run, "items": items}}
    )


def _states(db: Path, run: str) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT id, status, attempts FROM jobs WHERE id LIKE ?", (f"{run}-%",)
        ).fetchall()
    return {job_id: (status, attempts) for job_id, status, attempts in rows}


def test_a_killed_host_loses_no_message_and_doubles_no_row(
    tmp_path: Path, storage_connection: str, record_property
) -> None:
    run = "kill" + uuid.uuid4().hex[:8]
    db = tmp_path / "shared.db"
    env = {
        "INGESTION_QUEUE": run,
        "SQL_CONNECTION_STRING": f"sqlite:///{db}",
        "DATA_DIR": str(tmp_path / "data"),
        # A received message's lease is the local host's 30 s, renewed while it runs: the
        # dead host's unfinished messages come back at most 30 s after the kill.
        "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:01",
    }
    queue = QueueServiceClient.from_connection_string(storage_connection).get_queue_client(run)
    (tmp_path / "a").mkdir()
    first = start_app(tmp_path / "a", storage_connection, env)
    for i in range(JOBS):
        queue.send_message(_job(i, run))
    # Freeze the host, then look: a job seen running while the host cannot move is still
    # running when the kill lands (jobs are short; on a busy machine a job seen running
    # a moment before the kill may have finished by then).
    process = first.process
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = _states(db, run)
        done = sum(s == "succeeded" for s, _ in states.values())
        if done >= JOBS // 10 and any(s == "running" for s, _ in states.values()):
            process.send_signal(signal.SIGSTOP)
            if any(s == "running" for s, _ in _states(db, run).values()):
                break
            process.send_signal(signal.SIGCONT)
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)  # mid-batch, no goodbye
    process.wait(10)
    at_kill = _states(db, run)
    running = {j for j, (s, _) in at_kill.items() if s == "running"}
    succeeded = {j for j, (s, _) in at_kill.items() if s == "succeeded"}
    assert running, "the kill should land while jobs run"

    (tmp_path / "b").mkdir()
    second = start_app(tmp_path / "b", storage_connection, env)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = _states(db, run)
            if len(states) == JOBS and all(s == "succeeded" for s, _ in states.values()):
                break
            time.sleep(0.5)
        states = _states(db, run)
        assert sum(s == "succeeded" for s, _ in states.values()) == JOBS, states
        for job_id in succeeded:  # finished before the kill: never run again
            assert states[job_id] == at_kill[job_id], job_id
        for job_id in running:  # taken over after the lease: one more attempt
            assert states[job_id][1] == at_kill[job_id][1] + 1, job_id
        with sqlite3.connect(db) as conn:
            rows, distinct = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT entity_id) FROM embeddings WHERE model_id = ?",
                (run,),
            ).fetchone()
        assert rows == distinct == JOBS * ROWS
        assert queue.get_queue_properties().approximate_message_count == 0
        record_property(
            "happened",
            f"SIGKILL with {len(running)} job(s) running and {len(succeeded)} done of {JOBS}: "
            "after the lease a new host took the running ones over (one more attempt each), "
            f"re-ran none that had succeeded; {rows:,} rows, {distinct:,} distinct; queue empty",
        )
    finally:
        stop_host(second)
