"""Inference overhead: ``InferenceService.infer`` vs bare ``InferenceSession.run``.

Same session object, same input values, one run, variants interleaved round by round:

* bare: ``session.run(None, feeds)`` on ready numpy arrays;
* service: ``InferenceService.infer`` on a parsed ``InferRequest`` (model lookup in SQLite,
  cache hits, input checks and list -> array decoding, run, output encoding with confidence,
  one inference-log row);
* + JSON: also ``InferRequest.model_validate_json`` of the body and ``model_dump_json`` of
  the response -- what the protocol's JSON costs on top, shown separately;
* + binary: the same through the binary tensor data extension (raw tensor bytes after a
  JSON header, outputs returned as bytes: what the standard clients send by default).

Cases: a small skl2onnx classifier (iris, batch 1 and 32) and all-MiniLM-L6-v2 int8 (batch 1
and 32, sequence 128) when its package is installed. Goal: <= 5% overhead at batch 32.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.db.connection import open_database
from shared.db.migrate import apply_migrations
from shared.inference.file_cache import ModelFileCache, file_sha256
from shared.inference.inspect import inspect_model
from shared.inference.protocol.types import DATATYPES, InferRequest, decode_inputs, encode_outputs
from shared.inference.repository import InferenceLogRepository, InferenceRecord
from shared.inference.service import InferenceService
from shared.inference.sessions import SessionCache
from shared.registry.repository import ModelRecord, ModelRepository
from shared.vectors.pool import BufferPool
from tests.support.pretrained import find_minilm

from .timing import interleaved, per_call, table

ROUNDS = 5
SEQ = 128
GOAL = 0.05


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
    record = InferenceRecord(
        model_name=case.model,
        model_version=1,
        latency_ms=1.0,
        rows=1,
        outcome="succeeded",
        confidence=0.5,
    )
    pieces: dict[str, Callable[[], object]] = {
        "resolve + cache hits": lambda: service.ensure_loaded(case.model),
        "decode inputs": lambda: decode_inputs(
            request, loaded.inputs, service.max_elements, service.pool
        ).release(),
        "encode outputs": lambda: encode_outputs(names, values),
        "log row": lambda: service.log.add(record),
    }
    return {name: per_call(fn, repeat=3, min_time=0.05) for name, fn in pieces.items()}


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
            total = sum(parts.values())
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
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
