"""`python -m reliability [--docs]`: the whole run, one table at the end.

Starts Azurite and the app on the local host (fresh SQLite), seeds a search set and a
model, runs locust on the hot routes, sends the queue messages and accounts for each,
samples the host's memory, then runs the fault and hostile-input tests. Writes the table
to `reliability/latest.md` (and into docs/reliability.md with `--docs`). Exit code 1 when a goal
is missed. Sizes: see `reliability.run_size`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from reliability import hostlog, queue_accounting, report
from reliability.host_memory import CacheBounds, MemoryFigures, PeakSampler, rss
from reliability.load import run_locust
from reliability.run_size import RunSettings
from reliability.seed import SEARCH_MODEL, SEARCH_TYPE, InferTarget, register_model, seed_search
from reliability.stack import Stack, db_path, running_stack
from reliability.suites import run_suites

HERE = Path(__file__).resolve().parent
DOC_PATH = "docs/reliability.md"  # relative to the project folder, HERE.parent
_T0 = time.monotonic()


def say(text: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f} s] {text}", file=sys.stderr, flush=True)


def warm_up(stack: Stack, target: InferTarget, dim: int) -> None:
    """One request per route, so the memory taken by loading is counted apart."""
    vector = [0.1] * dim
    calls = [
        ("/vectors/cosine", {"a": vector, "b": [vector, vector]}),
        ("/search", {"vector": vector, "top_k": 10, "model_id": SEARCH_MODEL,
                     "embedding_type": SEARCH_TYPE}),
        (f"/v2/models/{target.name}/infer", {"inputs": [
            {"name": target.input_name, "shape": [1, target.features], "datatype": "FP32",
             "data": [1.0] * target.features}]}),
    ]  # fmt: skip
    for path, body in calls:
        reply = stack.call("POST", path, body)
        if reply.status != 200:
            raise RuntimeError(f"warm-up {path} answered {reply.status}: {reply.body[:300]!r}")


def bounds(settings: RunSettings, model_bytes: int) -> CacheBounds:
    from shared.settings import Settings
    from shared.vectors.pool import DEFAULT_MAX_BYTES

    sessions = Settings.from_env({"SQL_CONNECTION_STRING": "sqlite:///x"}).max_sessions
    return CacheBounds(settings.search_cache_bytes, DEFAULT_MAX_BYTES, sessions, model_bytes)


def measure(tmp: Path, settings: RunSettings) -> list[report.Row]:
    """Load, ingestion and memory against one fresh stack."""
    say(f"seeding {settings.search_rows:,} x {settings.dim} embeddings")
    seed_search(db_path(tmp), settings.search_rows, settings.dim)
    with running_stack(tmp, search_cache_bytes=settings.search_cache_bytes) as stack:
        say("host started; registering the model")
        target = register_model(stack)
        start = rss(stack.pid)
        warm_up(stack, target, settings.dim)
        warm = rss(stack.pid)
        with PeakSampler(stack.pid) as sampler:
            say(f"locust: {settings.users} clients for {settings.seconds} s")
            load = run_locust(
                stack.origin,
                key=stack.key,
                dim=settings.dim,
                target=target,
                seconds=settings.seconds,
                users=settings.users,
                out_dir=tmp,
            )
            plan = queue_accounting.Plan.new(settings.messages, settings.rows_per_message)
            say(f"queue: {plan.messages:,} messages")
            accounting = queue_accounting.run(
                stack.connection_string,
                stack.db_path,
                plan,
                read_log=stack.host.log,
                timeout=settings.drain_seconds,
            )
        end = rss(stack.pid)
        model_bytes = (tmp / f"{target.name}.onnx").stat().st_size
        memory = MemoryFigures(start, warm, end, sampler.peak, bounds(settings, model_bytes))
        log = hostlog.read(stack.host.log())
    return [
        *report.load_rows(load),
        report.ingestion_row(accounting),
        report.memory_row(memory),
        report.host_log_row(log),
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    parser.add_argument("--docs", action="store_true", help="copy the table into " + DOC_PATH)
    parser.add_argument("--out", type=Path, default=HERE / "latest.md")
    parser.add_argument("--work", type=Path, help="folder for the run's files (default: new)")
    args = parser.parse_args(argv)
    settings = RunSettings.from_env()
    tmp = args.work or Path(tempfile.mkdtemp(prefix="reliability-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        rows = measure(tmp, settings)
    except Exception as exc:  # the table still comes out, with the reason, and the suites run
        say(f"the load run stopped: {type(exc).__name__}: {exc}")
        rows = [report.Row("load", "the load run", f"stopped: {type(exc).__name__}: {exc}"[:400],
                           "MISSED")]  # fmt: skip
    suites = None
    if settings.suites:
        say("fault and hostile-input tests")
        suites = run_suites(tmp)
    rows = [*(r for r in report.suite_rows(suites) if r.area == "fault"), *rows]
    rows += [r for r in report.suite_rows(suites) if r.area != "fault"]
    text = report.document(rows, settings_line=f"{settings.describe()}.")
    print(text)
    args.out.write_text(text, encoding="utf-8")
    if args.docs and not report.update_doc(HERE.parent / DOC_PATH, text):
        say(f"{DOC_PATH} has no reliability markers; not updated")
    missed = [r for r in rows if r.goal == "MISSED"]
    if missed:
        say(f"{len(missed)} goal(s) missed; logs kept in {tmp}")
        return 1
    if args.work is None:  # a folder the caller named is theirs to keep
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
