"""Inference overhead: ``InferenceService.infer`` vs bare ``InferenceSession.run``.

Same session object, same input values, one run, variants interleaved round by round:

* bare: ``session.run(None, feeds)`` on ready numpy arrays;
* service: ``InferenceService.infer`` on a parsed ``InferRequest`` (the resolved version
  and its session from memory, input checks and list -> array decoding, run, output
  encoding with confidence, metrics, one inference-log row queued; the background
  writer's inserts share the process and so count in the time per call);
* + JSON: also ``InferRequest.model_validate_json`` of the body and ``model_dump_json`` of
  the response -- what the protocol's JSON costs on top, shown separately;
* + binary: the same through the binary tensor data extension (raw tensor bytes after a
  JSON header, outputs returned as bytes: what the standard clients send by default).

Cases: a small skl2onnx classifier (iris, batch 1 and 32) and all-MiniLM-L6-v2 int8 (batch 1
and 32, sequence 128) when its package is installed. Goal: <= 5% overhead at batch 32.

Then the fixed cost per call (service minus bare, iris) without telemetry and with the
Azure Monitor SDK configured as the host configures it (``devhost.otel_sdk.configure``:
``configure_azure_monitor()``, exporting to a loopback endpoint that accepts everything).
Providers can be set once per process, so each variant runs in a fresh process of its
own (``--child``), alternating, best of ``CHILD_RUNS`` each. Goal: <= 50 us without
telemetry at batch 1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from shared.db.connection import open_database
from shared.db.migrate import apply_migrations
from shared.inference.file_cache import ModelFileCache, file_sha256
from shared.inference.inspect import inspect_model
from shared.inference.protocol.types import DATATYPES, InferRequest, decode_inputs, encode_outputs
from shared.inference.repository import InferenceLogRepository
from shared.inference.service import InferenceService, record_inference
from shared.inference.sessions import SessionCache
from shared.registry.repository import ModelRecord, ModelRepository
from shared.vectors.pool import BufferPool
from tests.support.pretrained import find_minilm

from .timing import interleaved, per_call, table

ROUNDS = 5
SEQ = 128
GOAL = 0.05
FIXED_GOAL_US = 50.0  # iris batch 1, no telemetry
CHILD_RUNS = 2  # fresh processes per telemetry variant


@dataclass
class Case:
    label: str
    model: str
    feeds: dict[str, np.ndarray]


def _classifier(folder: Path) -> Path:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.neural_network import MLPClassifier

    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(x, y)
    path = folder / "iris.onnx"
    onx = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
    path.write_bytes(onx.SerializeToString())
    return path


def _request(feeds: dict[str, np.ndarray], datatype: dict[str, str]) -> InferRequest:
    return InferRequest(
        inputs=[
            {"name": n, "shape": list(a.shape), "datatype": datatype[n], "data": a.tolist()}
            for n, a in feeds.items()
        ]
    )


def _service(folder: Path, files: dict[str, Path]) -> InferenceService:
    db = open_database(f"sqlite:///{folder / 'bench.db'}")
    apply_migrations(db)
    models = ModelRepository(db)
    blobs = {}
    for name, path in files.items():
        sha = file_sha256(path)
        record, _ = models.register(
            name, sha256=sha, size_bytes=path.stat().st_size, blob_uri=name, blob_name=name
        )
        models.set_status(record.id, "ready", metadata=inspect_model(path).to_metadata())
        blobs[name] = path

    def download(record: ModelRecord, dest: Path) -> None:
        shutil.copyfile(blobs[record.blob_name or ""], dest)

    return InferenceService(
        models,
        InferenceLogRepository(db),
        ModelFileCache(folder / "cache", 1 << 30),
        SessionCache(4),
        download,
        BufferPool(),
    )


def _cases(folder: Path) -> tuple[dict[str, Path], list[Case]]:
    rng = np.random.default_rng(0)
    files = {"iris": _classifier(folder)}
    cases = [
        Case(f"iris MLP, batch {b}", "iris", {"X": rng.normal(5, 1, (b, 4)).astype(np.float32)})
        for b in (1, 32)
    ]
    found = find_minilm()
    if found is not None:
        files["minilm"] = found[0]
        for b in (1, 32):
            ids = rng.integers(1000, 20000, (b, SEQ), dtype=np.int64)
            feeds = {
                "input_ids": ids,
                "attention_mask": np.ones_like(ids),
                "token_type_ids": np.zeros_like(ids),
            }
            cases.append(Case(f"MiniLM int8, batch {b} x {SEQ}", "minilm", feeds))
    return files, cases


def _parts(service: InferenceService, case: Case, request: InferRequest) -> dict[str, float]:
    """Seconds per call of each piece the service adds, timed alone (free of run-time noise)."""
    loaded = service.ensure_loaded(case.model)
    names = loaded.output_names
    values = loaded.session.run(names, case.feeds)
    row = (None, case.model, 1, 1.0, 1, 0.5, "succeeded", None, "2026-01-01T00:00:00.000")
    log = InferenceLogRepository(service.log.db, background=False)
    pieces: dict[str, Callable[[], object]] = {
        "model + session (memory)": lambda: service._serving(case.model, None),
        "decode inputs": lambda: decode_inputs(
            request, loaded.input_specs, service.max_elements, service.pool
        ).release(),
        "encode outputs": lambda: encode_outputs(names, values),
        "metrics (no SDK)": lambda: record_inference(case.model, 1, 1.0, True, [0.5]),
    }
    parts = {name: per_call(fn, repeat=3, min_time=0.05) for name, fn in pieces.items()}
    parts["log row queued"] = _queued(service, row)
    # off the caller's time, for reference: what the models table read (once per
    # refresh_seconds) and a row inserted alone (the writer batches them) would cost
    parts["(resolve, SQL)"] = per_call(lambda: service.resolve(case.model), repeat=3)
    parts["(one row inserted alone)"] = per_call(lambda: log.insert([row]), repeat=3)
    return parts


def _queued(service: InferenceService, row: tuple, rows: int = 2000, repeat: int = 5) -> float:
    """Seconds per ``add_row`` on the caller's side: batches of ``rows``, the writer
    flushed between them so the queue never fills (a full queue drops rows, cheaper)."""
    best = float("inf")
    for _ in range(repeat):
        service.flush()
        start = time.perf_counter()
        for _ in range(rows):
            service.log.add_row(row)
        best = min(best, (time.perf_counter() - start) / rows)
    service.flush()
    return best


def _binary_body(case: Case, types: dict[str, str]) -> tuple[bytes, str]:
    """The request as tritonclient sends it: a JSON header, then each input's bytes."""
    import json

    from shared.inference.protocol.binary import tensor_bytes

    raws = {name: tensor_bytes(types[name], arr) for name, arr in case.feeds.items()}
    header = {
        "inputs": [
            {
                "name": name,
                "shape": list(arr.shape),
                "datatype": types[name],
                "parameters": {"binary_data_size": len(raws[name])},
            }
            for name, arr in case.feeds.items()
        ],
        "parameters": {"binary_data_output": True},
    }
    head = json.dumps(header).encode()
    return head + b"".join(raws.values()), str(len(head))


def _binary_call(service: InferenceService, model: str, body: bytes, length: str) -> bytes:
    from shared.http.requests import parse_json
    from shared.inference.protocol import binary as oip_binary

    header, binary = oip_binary.split_body(body, length)
    request = parse_json(header, InferRequest)
    oip_binary.attach_inputs(request, binary)
    response = service.infer(model, None, request)
    wanted = oip_binary.binary_outputs(request, [o.name for o in response.outputs])
    return oip_binary.encode_response(response, wanted)[0]


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f}"


# -- the fixed cost with and without the Azure Monitor SDK, one fresh process each -------

TELEMETRY_VARIANTS = ("none", "azure-monitor")


@contextmanager
def _ingestion() -> Iterator[str]:
    """A loopback Application Insights endpoint that accepts every post and keeps
    nothing; yields the connection string."""

    class Accept(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            reply = b'{"itemsReceived": 0, "itemsAccepted": 0, "errors": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        do_GET = do_POST

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        yield (
            "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
            f"IngestionEndpoint={base};LiveEndpoint={base}"
        )
    finally:
        server.shutdown()
        server.server_close()


def _child(variant: str, model: Path, folder: Path) -> dict[str, dict[str, float]]:
    """In a fresh process: telemetry as the host configures it (from the environment),
    then bare vs service for iris at batch 1 and 32, interleaved."""
    from devhost.otel_sdk import configure

    configured = configure()
    expected = "azure_monitor" if variant == "azure-monitor" else "off"
    assert configured.mode == expected, f"telemetry is {configured.mode}, not {expected}"
    try:
        service = _service(folder, {"iris": model})
        session = service.ensure_loaded("iris").session
        rng = np.random.default_rng(0)
        out = {}
        for b in (1, 32):
            feeds = {"X": rng.normal(5, 1, (b, 4)).astype(np.float32)}
            request = _request(feeds, {"X": "FP32"})
            best = interleaved(
                {
                    "bare": lambda f=feeds: session.run(None, f),
                    "service": lambda r=request: service.infer("iris", None, r),
                },
                rounds=ROUNDS,
                min_time=0.1,
            )
            out[f"batch {b}"] = best
        return out
    finally:
        configured.shutdown()


def _fixed_costs(folder: Path, model: Path) -> dict[str, dict[str, float]]:
    """Best fixed cost (service - bare, seconds) per variant and batch, over CHILD_RUNS
    fresh processes per variant, alternating."""
    best: dict[str, dict[str, float]] = {}
    with _ingestion() as connection:
        for run in range(CHILD_RUNS):
            for variant in TELEMETRY_VARIANTS:
                env = {
                    k: v
                    for k, v in os.environ.items()
                    if k
                    not in (
                        "APPLICATIONINSIGHTS_CONNECTION_STRING",
                        "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
                        "OTEL_EXPORTER_OTLP_ENDPOINT",
                        "OTEL_TRACES_EXPORTER",
                    )
                }
                if variant == "azure-monitor":
                    env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = connection
                    env["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] = "true"
                work = folder / f"child-{variant}-{run}"
                work.mkdir()
                done = subprocess.run(
                    [sys.executable, "-m", "benchmarks.bench_inference", "--child", variant]
                    + [str(model), str(work)],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                if done.returncode != 0:
                    raise RuntimeError(f"{variant} child failed:\n{done.stderr[-3000:]}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                mine = best.setdefault(variant, {})
                for batch, times in result.items():
                    cost = times["service"] - times["bare"]
                    figures = {batch: cost, f"{batch} bare": times["bare"]}
                    for key, value in figures.items():
                        mine[key] = min(mine.get(key, float("inf")), value)
    return best


def _telemetry_table(costs: dict[str, dict[str, float]]) -> tuple[str, str]:
    off, sdk = costs["none"], costs["azure-monitor"]
    rows = []
    for batch in ("batch 1", "batch 32"):
        added = sdk[batch] - off[batch]
        rows.append(
            [
                f"iris MLP, {batch}",
                _us(off[f"{batch} bare"]),
                _us(off[batch]),
                _us(sdk[batch]),
                f"{_us(added)} ({sdk[batch] / off[batch]:.2f}x)",
            ]
        )
    headers = [
        "case",
        "bare run (us)",
        "fixed cost, no telemetry (us)",
        "fixed cost, Azure Monitor SDK (us)",
        "the SDK adds (us)",
    ]
    title = (
        f"Fixed cost per call (service.infer - bare run), best of {CHILD_RUNS} fresh "
        "processes per variant"
    )
    fixed = off["batch 1"] * 1e6
    verdict = (
        f"fixed cost at batch 1 without telemetry: {fixed:.1f} us (goal <= {FIXED_GOAL_US:.0f} "
        f"us: {'met' if fixed <= FIXED_GOAL_US else 'NOT met'}); the Azure Monitor SDK adds "
        f"{(sdk['batch 1'] - off['batch 1']) * 1e6:+.1f} us per call"
    )
    return table(title, headers, rows), verdict


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    try:
        files, cases = _cases(folder)
        service = _service(folder, files)
        rows, part_rows = [], []
        for case in cases:
            loaded = service.ensure_loaded(case.model)
            session = loaded.session
            types = {s.name: s.datatype for s in loaded.inputs}
            request = _request(case.feeds, types)
            body = request.model_dump_json()
            check = service.infer(case.model, None, request)
            (expected, *_) = session.run(None, case.feeds)
            got = np.asarray(check.outputs[0].data).reshape(expected.shape)
            assert np.array_equal(got, expected), f"{case.label}: results differ"
            assert all(n in DATATYPES for n in types.values())

            binary_body, length = _binary_body(case, types)
            variants: dict[str, Callable[[], object]] = {
                "bare": lambda s=session, f=case.feeds: s.run(None, f),
                "service": lambda m=case.model, r=request: service.infer(m, None, r),
                "json": lambda m=case.model, b=body: service.infer(
                    m, None, InferRequest.model_validate_json(b)
                ).model_dump_json(),
                "binary": lambda m=case.model, b=binary_body, n=length: _binary_call(
                    service, m, b, n
                ),
            }
            best = interleaved(variants, rounds=ROUNDS, min_time=0.1)
            overhead = best["service"] - best["bare"]
            rows.append(
                [
                    case.label,
                    _us(best["bare"]),
                    _us(best["service"]),
                    _us(overhead),
                    f"{overhead / best['bare']:+.1%}",
                    _us(best["json"] - best["service"]),
                    f"{(best['json'] - best['bare']) / best['bare']:+.1%}",
                    _us(best["binary"] - best["service"]),
                    f"{(best['binary'] - best['bare']) / best['bare']:+.1%}",
                ]
            )
            parts = _parts(service, case, request)
            total = sum(v for k, v in parts.items() if not k.startswith("("))
            part_rows.append(
                [
                    case.label,
                    *(_us(v) for v in parts.values()),
                    _us(total),
                    f"{total / best['bare']:.1%}",
                ]
            )
            part_headers = ["case", *(f"{k} (us)" for k in parts), "sum (us)", "sum % of bare"]
        headers = [
            "case",
            "bare run (us)",
            "service.infer (us)",
            "overhead (us)",
            "overhead %",
            "+ JSON in/out (us)",
            "JSON vs bare",
            "+ binary in/out (us)",
            "binary vs bare",
        ]
        print(
            f"best of {ROUNDS} interleaved rounds, each >= 0.1 s of calls; same session, same "
            f"inputs; goal: overhead <= {GOAL:.0%} at batch 32"
        )
        print(table("OIP inference overhead vs bare InferenceSession.run", headers, rows))
        print()
        print(table("Where the overhead goes (each piece timed alone)", part_headers, part_rows))
        print(
            "(bracketed pieces are not on the caller's time: the models table is read once "
            "per refresh_seconds per model, rows are inserted by the background writer in "
            "batches; the sum leaves them out)"
        )
        print()
        fixed, verdict = _telemetry_table(_fixed_costs(folder, files["iris"]))
        print(fixed)
        print(verdict)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        variant, model, work = sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
        print(json.dumps(_child(variant, model, work)))
    else:
        main()
