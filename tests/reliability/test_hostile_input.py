"""Hostile input through the real app on the local host: a matrix of bad requests and
queue messages, each of which must get a 4xx (or a failed job row) with a message that
names the problem, no 5xx, no traceback or internal path in the body, and leave the app
working (a health check and a known-good call after each group).

Every input tried and its outcome is written, one JSON line each, to
`$RELIABILITY_RESULTS_DIR/hostile_input.jsonl` when that variable is set (`make
reliability` collects it): `{"group", "input", "expected", "status", "outcome", "ok"}`.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from azure.storage.queue import QueueClient

from devhost.launcher import Reply
from shared.settings import ROOT
from tests.support.host import Host, start_app, stop_host, wait_for_job, wait_for_model
from tests.support.models import write_classifier, write_external

RESULTS_FILE = "hostile_input.jsonl"
#: What must never show in a reply: a traceback, a source file, this machine's folders.
LEAKS = (
    "Traceback",
    'File "',
    '.py"',
    ".py'",
    ".py:",
    str(ROOT),
    "/tmp/",
    "/home/",
    "site-packages",
)
GOOD_DOT = {"a": [1, 2, 3], "b": [4, 5, 6]}


@dataclass(frozen=True)
class Case:
    """One hostile request and what it must get: a status (or any 4xx) and the words
    the error message must contain to name the problem."""

    name: str
    method: str
    path: str
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] | None = None
    status: int | None = 400  # None: any 4xx
    words: tuple[str, ...] = ()


class Recorder:
    """Checks each reply and writes one line per input for the reliability report."""

    def __init__(self, path: Path | None) -> None:
        self.out = path.open("a", encoding="utf-8") if path else None
        self.problems: list[str] = []

    def record(self, group: str, name: str, expected: str, status: int | str, outcome: str) -> None:
        ok = not outcome.startswith("PROBLEM")
        if not ok:
            self.problems.append(f"[{group}] {name}: {outcome}")
        if self.out:
            row = {
                "group": group,
                "input": name,
                "expected": expected,
                "status": status,
                "outcome": outcome,
                "ok": ok,
            }
            self.out.write(json.dumps(row, ensure_ascii=True) + "\n")
            self.out.flush()

    def close(self) -> None:
        if self.out:
            self.out.close()


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    folder = os.environ.get("RELIABILITY_RESULTS_DIR")
    path = None
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        path = Path(folder) / RESULTS_FILE
        path.unlink(missing_ok=True)  # one run's inputs, not every run's
    rec = Recorder(path)
    yield rec
    rec.close()


def error_message(reply: Reply) -> str:
    """The message an error reply carries: the app's `error.message`, the inference
    routes' `error`, or the host's own plain text (413 before the function runs)."""
    try:
        data = json.loads(reply.body)
    except ValueError:
        return reply.body.decode("utf-8", errors="replace")
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return f"{error.get('message', '')} (field {error.get('field')}, code {error.get('code')})"
    return str(error) if error is not None else reply.body.decode("utf-8", errors="replace")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(body: bytes) -> bool:
    """JSON any client can read: no NaN or Infinity tokens (Python's json allows them)."""
    try:
        json.loads(body, parse_constant=_no_constants)
    except ValueError:
        return False
    return True


def judge(reply: Reply, status: int | None, words: tuple[str, ...]) -> str:
    """'4xx: <message>' when the reply is what a hostile input must get, else 'PROBLEM: ...'."""
    text = reply.body.decode("utf-8", errors="replace")
    leak = next((s for s in LEAKS if s in text), None)
    message = error_message(reply)
    if reply.status >= 500:
        return f"PROBLEM: {reply.status} {message[:200]}"
    if "json" in reply.headers.get("content-type", "") and not strict_json(reply.body):
        return f"PROBLEM: the reply is not standard JSON (NaN/Infinity?): {text[:200]}"
    if leak:
        return f"PROBLEM: the reply shows {leak!r}: {text[:200]}"
    if status is None and not 400 <= reply.status < 500:
        return f"PROBLEM: {reply.status}, expected a 4xx: {message[:200]}"
    if status is not None and reply.status != status:
        return f"PROBLEM: {reply.status}, expected {status}: {message[:200]}"
    missing = [w for w in words if w.lower() not in message.lower()]
    if missing:
        return f"PROBLEM: the message does not name {missing}: {message[:200]}"
    return f"{reply.status}: {message[:300]}"


def run_group(host: Host, recorder: Recorder, group: str, cases: list[Case]) -> None:
    for case in cases:
        try:
            reply = host.call(case.method, case.path, case.body, raw=case.raw, headers=case.headers)
        except OSError as exc:  # the connection itself failed: as bad as a 5xx
            recorder.record(group, case.name, str(case.status), "error", f"PROBLEM: {exc}")
            continue
        expected = str(case.status or "4xx")
        recorder.record(
            group, case.name, expected, reply.status, judge(reply, case.status, case.words)
        )
    check_undisturbed(host, recorder, group)


def check_undisturbed(host: Host, recorder: Recorder, group: str) -> None:
    """After each group: health answers, a known-good call gives the known answer, and
    the analytics over every call so far (refused ones too) still read."""
    health = host.call("GET", "/health", key=None)
    good = host.call("POST", "/vectors/dot", GOOD_DOT)
    usage = host.call("GET", "/analytics/usage?days=2")
    fine = health.status == 200 and good.status == 200 and good.json()["result"] == 32.0
    fine = fine and usage.status == 200
    outcome = (
        "200: health, a known-good dot product and the analytics still answer"
        if fine
        else f"PROBLEM: health {health.status}, dot {good.status} {good.body[:200]!r}, "
        f"analytics {usage.status} {usage.body[:200]!r}"
    )
    recorder.record(group, "(after the group) health, dot, analytics", "200", 200, outcome)


def finish(recorder: Recorder) -> None:
    problems, recorder.problems = recorder.problems, []
    assert not problems, "hostile inputs handled badly:\n  " + "\n  ".join(problems)


# -- HTTP groups ------------------------------------------------------------------------


def test_malformed_and_wrong_type_json(app_host: Host, recorder: Recorder) -> None:
    cases = [
        Case(
            "truncated JSON", "POST", "/vectors/dot", raw=b'{"a": [1, 2', words=("not valid JSON",)
        ),
        Case("empty body", "POST", "/vectors/dot", raw=b"", words=("empty",)),
        Case("whitespace body", "POST", "/search", raw=b" \n\t ", words=("empty",)),
        Case("JSON array body", "POST", "/vectors/dot", raw=b"[1, 2]", words=("JSON object",)),
        Case("JSON string body", "POST", "/search", raw=b'"hello"', words=("JSON object",)),
        Case("JSON null body", "PUT", "/embeddings", raw=b"null", words=("JSON object",)),
        Case("trailing garbage", "POST", "/vectors/dot", raw=b'{"a": [1]} x', words=("JSON",)),
        Case("invalid UTF-8", "POST", "/vectors/dot", raw=b'{"a": "\xff\xfe"}', words=("JSON",)),
        Case(
            "UTF-16 body", "POST", "/vectors/dot", raw='{"a": [1]'.encode("utf-16"), words=("JSON",)
        ),
        Case(
            "100k nested arrays",
            "POST",
            "/vectors/dot",
            raw=b"[" * 100_000 + b"]" * 100_000,
            words=("nested too deeply",),
        ),
        Case(
            "a 5000-digit number",
            "POST",
            "/vectors/norm",
            raw=b'{"a": [' + b"9" * 5000 + b"]}",
            words=("not valid JSON", "digits"),
        ),
        Case(
            "100k nested objects",
            "POST",
            "/search",
            raw=b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
            words=("nested too deeply",),
        ),
        Case("a: string", "POST", "/vectors/dot", {"a": "abc", "b": [1]}, words=("a:", "got str")),
        Case("a: number", "POST", "/vectors/norm", {"a": 5}, words=("a:", "got int")),
        Case("a: booleans", "POST", "/vectors/norm", {"a": [True, False]}, words=("a:", "bool")),
        Case("a: null items", "POST", "/vectors/norm", {"a": [1, None]}, words=("a:", "NoneType")),
        Case("a: nested 3 deep", "POST", "/vectors/norm", {"a": [[[1]]]}, words=("a[0]",)),
        Case("a: object", "POST", "/vectors/norm", {"a": {"x": 1}}, words=("a:", "b64")),
        Case("top_k: string", "POST", "/search", {"vector": [1], "top_k": "ten"}, words=("top_k",)),
        Case("top_k: float", "POST", "/search", {"vector": [1], "top_k": 1.5}, words=("top_k",)),
        Case("metric: number", "POST", "/search", {"vector": [1], "metric": 5}, words=("metric",)),
        Case(
            "unknown field",
            "POST",
            "/vectors/dot",
            {**GOOD_DOT, "c": 1},
            words=("c", "unknown field"),
        ),
        Case("mode: bogus", "POST", "/vectors/dot", {**GOOD_DOT, "mode": "diag"}, words=("mode",)),
        Case(
            "format: bogus", "POST", "/vectors/norm", {"a": [1], "format": "hex"}, words=("format",)
        ),
        Case(
            "items: object", "PUT", "/embeddings", {"model_id": "m", "items": {}}, words=("items",)
        ),
        Case(
            "payload: list", "POST", "/jobs", {"kind": "model", "payload": []}, words=("payload",)
        ),
        Case("kind: unknown", "POST", "/jobs", {"kind": "bake", "payload": {}}, words=("kind",)),
        Case(
            "payload: missing field",
            "POST",
            "/jobs",
            {"kind": "model", "payload": {}},
            words=("payload.version_id", "missing"),
        ),
        Case("infer: inputs string", "POST", "/v2/models/none/infer", {"inputs": "x"}),
        Case(
            "texts: number",
            "POST",
            "/embeddings/text",
            {"model": "m", "texts": 5},
            words=("texts",),
        ),
    ]
    run_group(app_host, recorder, "json", cases)
    finish(recorder)


def test_wrong_content_types(app_host: Host, recorder: Recorder) -> None:
    """The JSON routes read the body whatever Content-Type says (as Azure's HttpRequest
    does; `curl -d` sends form-urlencoded): a JSON body in any type is served, and a body
    that is not JSON is a 400 saying so."""
    xml = {"Content-Type": "application/xml"}
    cases = [
        Case(
            "XML body as XML", "POST", "/vectors/dot", raw=b"<a>1</a>", headers=xml, words=("JSON",)
        ),
        Case(
            "form body as form",
            "POST",
            "/search",
            raw=b"vector=1&top_k=2",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            words=("JSON",),
        ),
        Case(
            "multipart body",
            "POST",
            "/vectors/dot",
            raw=b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--b--\r\n',
            headers={"Content-Type": "multipart/form-data; boundary=b"},
            words=("JSON",),
        ),
        Case(
            "random bytes as octet-stream",
            "POST",
            "/vectors/dot",
            raw=bytes(range(256)),
            headers={"Content-Type": "application/octet-stream"},
            words=("JSON",),
        ),
    ]
    run_group(app_host, recorder, "content-type", cases)
    for ctype in ("text/plain", "application/xml", "application/x-www-form-urlencoded"):
        reply = app_host.call("POST", "/vectors/dot", GOOD_DOT, headers={"Content-Type": ctype})
        ok = reply.status == 200 and reply.json()["result"] == 32.0
        recorder.record(
            "content-type",
            f"valid JSON sent as {ctype}",
            "200",
            reply.status,
            "200: served (the body is JSON)"
            if ok
            else f"PROBLEM: {reply.status} {reply.body[:200]!r}",
        )
    finish(recorder)


def test_vectors_nan_inf_bytes_and_dimensions(app_host: Host, recorder: Recorder) -> None:
    import base64

    import numpy as np

    def b64(values: list[float] | bytes) -> str:
        raw = values if isinstance(values, bytes) else np.array(values, "<f4").tobytes()
        return base64.b64encode(raw).decode()

    cases = [
        Case("NaN literal", "POST", "/vectors/norm", raw=b'{"a": [1, NaN]}', words=("a", "NaN")),
        Case(
            "Infinity literal",
            "POST",
            "/vectors/norm",
            raw=b'{"a": [Infinity]}',
            words=("a", "infinite"),
        ),
        Case(
            "-Infinity in b",
            "POST",
            "/vectors/dot",
            raw=b'{"a": [1], "b": [-Infinity]}',
            words=("b",),
        ),
        Case(
            "1e39 (beyond float32)",
            "POST",
            "/vectors/norm",
            raw=b'{"a": [1e39]}',
            words=("a", "float32"),
        ),
        Case(
            "1e400 (beyond float64)", "POST", "/vectors/norm", raw=b'{"a": [1e400]}', words=("a",)
        ),
        Case(
            "10**400 integer",
            "POST",
            "/vectors/norm",
            raw=b'{"a": [1' + b"0" * 400 + b"]}",
            words=("a",),
        ),
        Case(
            "NaN row of a matrix",
            "POST",
            "/vectors/norm",
            raw=b'{"a": [[1], [NaN]]}',
            words=("a[1]",),
        ),
        Case(
            "b64 NaN bytes",
            "POST",
            "/vectors/norm",
            {"a": {"b64": b64([float("nan")])}},
            words=("a", "NaN"),
        ),
        Case(
            "b64 of 5 bytes",
            "POST",
            "/vectors/norm",
            {"a": {"b64": b64(b"\0" * 5)}},
            words=("a", "multiple of 4"),
        ),
        Case(
            "b64 of 7 bytes (b)",
            "POST",
            "/vectors/dot",
            {"a": [1, 2], "b": {"b64": b64(b"\0" * 7)}},
            words=("b", "multiple of 4"),
        ),
        Case(
            "b64 matrix 6 bytes",
            "POST",
            "/vectors/aggregate/centroid",
            {"vectors": {"b64": b64(b"\0" * 6), "shape": [1, 1]}},
            words=("vectors", "multiple of 4"),
        ),
        Case(
            "b64 not base64", "POST", "/vectors/norm", {"a": {"b64": "@@@@"}}, words=("a", "base64")
        ),
        Case(
            "b64 not a string", "POST", "/vectors/norm", {"a": {"b64": 12}}, words=("a", "string")
        ),
        Case(
            "b64 matrix shape mismatch",
            "POST",
            "/vectors/norm",
            {"a": {"b64": b64([1, 2, 3]), "shape": [2, 2]}},
            words=("a", "shape"),
        ),
        Case(
            "b64 matrix negative shape",
            "POST",
            "/vectors/norm",
            {"a": {"b64": b64([1]), "shape": [-1, 1]}},
            words=("a.shape",),
        ),
        Case(
            "dimension mismatch 3 vs 4",
            "POST",
            "/vectors/dot",
            {"a": [1, 2, 3], "b": [1, 2, 3, 4]},
            words=("b", "dimension 4", "dimension 3"),
        ),
        Case(
            "ragged matrix",
            "POST",
            "/vectors/aggregate/centroid",
            {"vectors": [[1, 2], [3]]},
            words=("vectors[1]", "dimension"),
        ),
        Case(
            "pairwise shapes differ",
            "POST",
            "/vectors/cosine",
            {"a": [[1, 2]], "b": [[1, 2], [3, 4]]},
            words=("b", "shape"),
        ),
        Case("empty vector", "POST", "/vectors/norm", {"a": []}, words=("a", "empty")),
        Case(
            "empty matrix row",
            "POST",
            "/vectors/aggregate/centroid",
            {"vectors": [[]]},
            words=("vectors",),
        ),
        Case(
            "scale: scalar NaN",
            "POST",
            "/vectors/scale",
            raw=b'{"a": [1], "scalar": NaN}',
            words=("scalar",),
        ),
        Case(
            "lerp: t Infinity",
            "POST",
            "/vectors/lerp",
            raw=b'{"a": [1], "b": [2], "t": Infinity}',
            words=("t",),
        ),
        Case(
            "scale: overflow",
            "POST",
            "/vectors/scale",
            {"a": [3e38], "scalar": 10},
            words=("result", "overflows"),
        ),
        Case(
            "scale: no scalar", "POST", "/vectors/scale", {"a": [1]}, words=("scalar", "required")
        ),
        Case("dot: no b", "POST", "/vectors/dot", {"a": [1]}, words=("b", "required")),
        Case(
            "mean_variance past float32",
            "POST",
            "/vectors/aggregate/mean_variance",
            {"vectors": [[3e38], [-3e38]]},
            words=("result", "overflows"),
        ),
        Case(
            "normalize a subnormal vector",
            "POST",
            "/vectors/normalize",
            {"a": [1e-45, 0]},
            status=200,
        ),
        Case(
            "unknown op",
            "POST",
            "/vectors/cross_product",
            GOOD_DOT,
            status=404,
            words=("op", "cross_product"),
        ),
        Case(
            "unknown aggregate",
            "POST",
            "/vectors/aggregate/median",
            {"vectors": [[1]]},
            status=404,
            words=("op", "median"),
        ),
        Case("op with NUL", "POST", "/vectors/dot%00", GOOD_DOT, status=404, words=("op",)),
        Case("op in other case", "POST", "/vectors/DOT", GOOD_DOT, status=404, words=("op",)),
    ]
    run_group(app_host, recorder, "vectors", cases)
    finish(recorder)


def test_search_top_k_metrics_and_dimensions(app_host: Host, recorder: Recorder) -> None:
    stored = app_host.call(
        "PUT",
        "/embeddings",
        {"model_id": "hostile-m", "items": [{"entity_id": "h1", "vector": [1, 0, 0]}]},
    )
    assert stored.status == 200, stored.body
    q = {"vector": [1, 0, 0], "model_id": "hostile-m"}
    cases = [
        Case(f"top_k={k!r}", "POST", "/search", {**q, "top_k": k}, words=("top_k",))
        for k in (0, -1, 1001, 10**30, None, True, "5", [1])
    ] + [
        Case(
            "metric: manhattan", "POST", "/search", {**q, "metric": "manhattan"}, words=("metric",)
        ),
        Case("metric: COSINE", "POST", "/search", {**q, "metric": "COSINE"}, words=("metric",)),
        Case(
            "vector and vectors",
            "POST",
            "/search",
            {**q, "vectors": [[1, 0, 0]]},
            words=("exactly one",),
        ),
        Case("neither vector", "POST", "/search", {"top_k": 1}, words=("exactly one",)),
        Case(
            "1025 queries > 1024",
            "POST",
            "/search",
            {"vectors": [[1, 0, 0]] * 1025},
            words=("vectors", "1025"),
        ),
        Case(
            "dimension 4 vs stored 3",
            "POST",
            "/search",
            {**q, "vector": [1, 0, 0, 0]},
            words=("dimension",),
        ),
        Case(
            "vectors dimension 2 vs 3",
            "POST",
            "/search",
            {"model_id": "hostile-m", "vectors": [[1, 0]]},
            words=("dimension",),
        ),
        Case(
            "NaN query",
            "POST",
            "/search",
            raw=b'{"vector": [NaN, 0, 0], "model_id": "hostile-m"}',
            words=("vector",),
        ),
        Case(
            "upsert dimension 4 into a 3-d set",
            "PUT",
            "/embeddings",
            {"model_id": "hostile-m", "items": [{"entity_id": "h2", "vector": [1, 0, 0, 0]}]},
            status=409,  # the set's dimension is fixed: a conflict with what is stored
            words=("dimension",),
        ),
        Case(
            "upsert NaN",
            "PUT",
            "/embeddings",
            {
                "model_id": "hostile-m",
                "items": [{"entity_id": "h3", "vector": [float("nan"), 0, 0]}],
            },
            words=("NaN",),
        ),
    ]
    run_group(app_host, recorder, "search", cases)
    hits = app_host.call("POST", "/search", {**q, "top_k": 5}).json()["results"]
    assert [h["entity_id"] for h in hits] == ["h1"]  # nothing the bad calls sent was stored
    finish(recorder)


def test_names_with_path_parts_nul_and_odd_unicode(app_host: Host, recorder: Recorder) -> None:
    long = "x" * 10_000
    rtl = "abc\u202egpj.exe"
    cases = [
        Case("model name ../evil", "POST", "/models?name=../evil", raw=b"x", words=("name",)),
        Case("model name a/b", "POST", "/models?name=a/b", raw=b"x", words=("name",)),
        Case(
            "model name %2e%2e%2f", "POST", "/models?name=%2e%2e%2fetc", raw=b"x", words=("name",)
        ),
        Case("model name with NUL", "POST", "/models?name=a%00b", raw=b"x", words=("name",)),
        Case(
            "model name RTL override",
            "POST",
            f"/models?name={quote(rtl)}",
            raw=b"x",
            words=("name",),
        ),
        Case("model name 10k chars", "POST", f"/models?name={long}", raw=b"x", words=("name",)),
        Case("model name empty", "POST", "/models?name=", raw=b"x", words=("name",)),
        Case("upload-url name ../x", "POST", "/models/upload-url?name=../x", words=("name",)),
        Case("infer model ..", "GET", "/v2/models/..", words=("name",)),
        Case("infer model %2e%2e%2fetc", "GET", "/v2/models/%2e%2e%2fetc", status=404),
        Case("infer model with NUL", "GET", "/v2/models/a%00b", words=("name",)),
        Case("infer model RTL", "GET", f"/v2/models/{quote(rtl)}", words=("name",)),
        Case("infer model 10k chars", "GET", f"/v2/models/{long}", words=("name",)),
        Case("infer version x", "GET", "/v2/models/hostile-none/versions/x", words=("integer",)),
        Case(
            "infer version 10**30",
            "GET",
            f"/v2/models/hostile-none/versions/{10**30}",
            words=("version",),
        ),
        Case("analytics name ../x", "GET", "/analytics/models/..%2Fx", status=404),
        Case(
            "analytics name NUL",
            "GET",
            "/analytics/models/a%00b",
            status=404,
            words=("no model named",),
        ),
        Case("entity NUL", "GET", "/embeddings/a%00b", status=404, words=("no embeddings",)),
        Case("entity 10k chars", "GET", f"/embeddings/{long}", words=("entity_id",)),
        Case(
            "entity lone surrogate (%ED%A0%80)",
            "GET",
            "/embeddings/%ED%A0%80",
            status=404,
            words=("no embeddings",),
        ),
        Case("job id lone surrogate (%ED%A0%80)", "GET", "/jobs/%ED%A0%80", status=404),
        Case("job id 10k chars", "GET", f"/jobs/{long}", status=404),
        Case(
            "model_id with NUL",
            "PUT",
            "/embeddings",
            {"model_id": "a\u0000b", "items": [{"entity_id": "e", "vector": [1]}]},
            words=("model_id",),
        ),
        Case(
            "entity_id lone surrogate",
            "PUT",
            "/embeddings",
            raw=b'{"model_id": "m", "items": [{"entity_id": "\\ud800", "vector": [1]}]}',
            words=("entity_id",),
        ),
        Case(
            "model_id 10k chars",
            "PUT",
            "/embeddings",
            {"model_id": long, "items": [{"entity_id": "e", "vector": [1]}]},
            words=("model_id",),
        ),
        Case(
            "search model_id lone surrogate",
            "POST",
            "/search",
            raw=b'{"vector": [1], "model_id": "\\udfff"}',
            words=("model_id",),
        ),
        Case(
            "job_id with path parts",
            "POST",
            "/jobs",
            {"kind": "model", "payload": {"version_id": "m"}, "job_id": "../../etc"},
            words=("job_id",),
        ),
        Case(
            "text with lone surrogate",
            "POST",
            "/embeddings/text",
            raw=b'{"model": "hostile-none", "texts": ["\\ud800"]}',
            status=404,  # the model is looked up first, and there is none
        ),
    ]
    run_group(app_host, recorder, "names", cases)
    finish(recorder)


@pytest.fixture(scope="module")
def iris_model(app_host: Host, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A ready classifier to send wrong tensors to: (name, its input's name)."""
    path = write_classifier(tmp_path_factory.mktemp("iris"), "hostile-iris.onnx")
    reply = app_host.call("POST", "/models?name=hostile-iris", raw=path.read_bytes())
    assert reply.status == 202, reply.body
    assert wait_for_model(app_host, "hostile-iris")["status"] == "ready"
    meta = app_host.call("GET", "/v2/models/hostile-iris").json()
    return "hostile-iris", meta["inputs"][0]["name"]


def test_tensors_of_the_wrong_datatype_or_shape(
    app_host: Host, recorder: Recorder, iris_model: tuple[str, str], tmp_path: Path
) -> None:
    model, x = iris_model
    url = f"/v2/models/{model}/infer"

    def tensor(**over: Any) -> dict:
        return {
            "inputs": [
                {"name": x, "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4], **over}
            ]
        }

    binary = json.dumps(
        {
            "inputs": [
                {
                    "name": x,
                    "shape": [1, 4],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 16},
                }
            ]
        }
    ).encode()
    cases = [
        Case("datatype INT64", "POST", url, tensor(datatype="INT64"), words=(x, "INT64")),
        Case(
            "datatype BYTES",
            "POST",
            url,
            tensor(datatype="BYTES", data=["a", "b", "c", "d"]),
            words=(x,),
        ),
        Case("datatype FP99", "POST", url, tensor(datatype="FP99"), words=("FP99",)),
        Case("shape [1, 3]", "POST", url, tensor(shape=[1, 3], data=[1, 2, 3]), words=(x,)),
        Case("rank 3", "POST", url, tensor(shape=[1, 1, 4]), words=(x,)),
        Case("shape vs data count", "POST", url, tensor(shape=[2, 4]), words=(x,)),
        Case("negative shape", "POST", url, tensor(shape=[-1, 4]), words=("shape",)),
        Case("huge shape", "POST", url, tensor(shape=[10**12, 4]), words=(x,)),
        Case("strings in FP32 data", "POST", url, tensor(data=["a", "b", "c", "d"]), words=(x,)),
        Case("nested ragged data", "POST", url, tensor(data=[[1, 2], [3]]), words=(x,)),
        Case(
            "NaN in FP32 data",
            "POST",
            url,
            raw=json.dumps(tensor(data=[1, 2, 3, float("nan")])).encode(),
            status=200,  # a model may take NaN (a missing value); its reply must be JSON
        ),
        Case("unknown input name", "POST", url, tensor(name="nope"), words=("nope",)),
        Case("no inputs", "POST", url, {"inputs": []}, words=("inputs",)),
        Case("input twice", "POST", url, {"inputs": tensor()["inputs"] * 2}, words=(x,)),
        Case(
            "unknown output",
            "POST",
            url,
            {**tensor(), "outputs": [{"name": "nope"}]},
            words=("nope",),
        ),
        Case(
            "unknown model",
            "POST",
            "/v2/models/hostile-none/infer",
            tensor(),
            status=404,
            words=("hostile-none",),
        ),
        Case(
            "unknown version",
            "POST",
            f"/v2/models/{model}/versions/99/infer",
            tensor(),
            status=404,
            words=("99",),
        ),
        Case("binary size without the binary header", "POST", url, raw=binary, words=("data",)),
        Case(
            "binary size past the body",
            "POST",
            url,
            raw=binary + b"\0" * 8,  # 8 of the 16 bytes the header promises
            headers={"Inference-Header-Content-Length": str(len(binary))},
            words=(x, "past the end"),
        ),
        Case(
            "binary data with 3 spare bytes",
            "POST",
            url,
            raw=binary + b"\0" * 19,
            headers={"Inference-Header-Content-Length": str(len(binary))},
            words=("3 bytes",),
        ),
    ]
    cases += _mixed_cases(app_host, tmp_path)
    run_group(app_host, recorder, "tensors", cases)
    finish(recorder)


def _mixed_cases(host: Host, tmp_path: Path) -> list[Case]:
    """Values that do not fit their datatype, on a model with INT64, FP16 and BOOL inputs."""
    from tests.support.models import write_mixed

    reply = host.call("POST", "/models?name=hostile-mixed", raw=write_mixed(tmp_path).read_bytes())
    assert reply.status == 202 and wait_for_model(host, "hostile-mixed")["status"] == "ready"
    url = "/v2/models/hostile-mixed/infer"
    base = {
        "ids": {"name": "ids", "shape": [1, 3], "datatype": "INT64", "data": [1, 2, 3]},
        "half": {"name": "half", "shape": [1, 2], "datatype": "FP16", "data": [0.5, 1]},
        "mask": {"name": "mask", "shape": [1], "datatype": "BOOL", "data": [True]},
    }

    def body(name: str, **over: Any) -> dict:
        return {"inputs": [{**v, **over} if k == name else v for k, v in base.items()]}

    empty = {"inputs": [{**v, "shape": [0, *v["shape"][1:]], "data": []} for v in base.values()]}
    return [
        Case("INT64 value 2**70", "POST", url, body("ids", data=[2**70, 1, 1]), words=("ids",)),
        Case("INT64 value 1.5", "POST", url, body("ids", data=[1.5, 1, 1]), words=("ids",)),
        Case("INT64 value 1e300", "POST", url, body("ids", data=[1e300, 1, 1]), words=("ids",)),
        Case(
            "FP16 value 1e6 (max 65504)",
            "POST",
            url,
            body("half", data=[1e6, 1]),
            words=("half", "FP16"),
        ),
        Case("BOOL value 2", "POST", url, body("mask", data=[2]), words=("mask", "BOOL")),
        Case("BOOL value null", "POST", url, body("mask", data=[None]), words=("mask",)),
        Case("data an object", "POST", url, body("mask", data={"a": 1}), words=("data",)),
        Case("empty batch (shape [0, 3], data [])", "POST", url, empty, status=200),
    ]


def test_corrupt_onnx_and_external_data_fail_their_job_with_the_reason(
    app_host: Host, recorder: Recorder, tmp_path: Path
) -> None:
    files = {
        "hostile-corrupt": (b"this is not a protobuf at all" * 50, ()),
        "hostile-empty-graph": (b"\x08\x07", ()),
        "hostile-ext-parent": (write_external(tmp_path, "../x.bin", "a.onnx").read_bytes(), ("w",)),
        "hostile-ext-abs": (write_external(tmp_path, "/etc/passwd", "b.onnx").read_bytes(), ("w",)),
    }
    for name, (data, words) in files.items():
        reply = app_host.call("POST", f"/models?name={name}", raw=data)
        if reply.status != 202:
            recorder.record("models", name, "202 then failed", reply.status, judge(reply, 202, ()))
            continue
        model = wait_for_model(app_host, name)
        error = model.get("error") or ""
        job = wait_for_job(app_host, f"ingest-{model['id']}")
        leak = next((s for s in LEAKS if s in error), None)
        if model["status"] != "failed" or job["status"] != "failed" or not error:
            outcome = f"PROBLEM: model {model['status']}, job {job['status']}: {error[:200]}"
        elif leak or any(w not in error for w in words) or job["error"] != error:
            outcome = f"PROBLEM: the reason is not what a user can read: {error[:200]}"
        else:
            outcome = f"failed job: {error[:300]}"
        recorder.record("models", f"upload {name}", "failed job with the reason", "failed", outcome)
        infer = app_host.call(
            "POST",
            f"/v2/models/{name}/infer",
            {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]},
        )
        recorder.record(
            "models", f"infer {name}", "409", infer.status, judge(infer, 409, ("failed",))
        )
    check_undisturbed(app_host, recorder, "models")
    finish(recorder)


# -- queue messages ---------------------------------------------------------------------


def test_queue_messages_become_failed_jobs_with_the_reason(
    app_host: Host, recorder: Recorder
) -> None:
    queue = QueueClient.from_connection_string(
        app_host.env["AzureWebJobsStorage"], "ingestion-jobs"
    )
    tag = uuid.uuid4().hex[:6]
    good_id = f"hq-good-{tag}"
    done = app_host.call(
        "POST",
        "/jobs",
        {
            "kind": "embeddings",
            "job_id": good_id,
            "payload": {"model_id": f"hq-{tag}", "items": [{"entity_id": "e", "vector": [1, 2]}]},
        },
    )
    assert done.status == 202 and wait_for_job(app_host, good_id)["status"] == "succeeded"

    def msg(**fields: Any) -> str:
        return json.dumps(fields)

    # (input, body, job id the row gets or None for malformed-<message id>, words)
    cases = [
        ("not JSON", "hello, queue", None, ("not JSON",)),
        ("truncated JSON", '{"job_id": "x", "kind": ', None, ("not JSON",)),
        ("JSON array", "[1, 2, 3]", None, ("JSON object",)),
        ("JSON number", "42", None, ("JSON object",)),
        ("empty object", "{}", None, ("required field is missing",)),
        ("5000 nested arrays", "[" * 5000 + "]" * 5000, None, ("nested too deeply",)),
        (
            "unknown kind",
            msg(job_id=f"hq-kind-{tag}", kind="bake", payload={}),
            f"hq-kind-{tag}",
            ("unknown job kind 'bake'",),
        ),
        (
            "kind: number",
            msg(job_id=f"hq-kindn-{tag}", kind=7, payload={}),
            f"hq-kindn-{tag}",
            ("kind",),
        ),
        (
            "schema_version 2",
            msg(job_id=f"hq-v2-{tag}", kind="model", schema_version=2, payload={"version_id": "m"}),
            f"hq-v2-{tag}",
            ("schema_version", "2"),
        ),
        (
            "schema_version true",
            msg(
                job_id=f"hq-vt-{tag}",
                kind="model",
                schema_version=True,
                payload={"version_id": "m"},
            ),
            f"hq-vt-{tag}",
            ("schema_version",),
        ),
        ("no kind", msg(job_id=f"hq-nok-{tag}", payload={}), f"hq-nok-{tag}", ("kind", "missing")),
        (
            "no payload",
            msg(job_id=f"hq-nop-{tag}", kind="model"),
            f"hq-nop-{tag}",
            ("payload", "missing"),
        ),
        ("no job_id", msg(kind="model", payload={"version_id": "m"}), None, ("job_id", "missing")),
        (
            "payload missing version_id",
            msg(job_id=f"hq-pm-{tag}", kind="model", payload={}),
            f"hq-pm-{tag}",
            ("payload.version_id",),
        ),
        (
            "embeddings: NaN vector",
            msg(  # json.dumps writes the NaN token
                job_id=f"hq-nan-{tag}",
                kind="embeddings",
                payload={"model_id": "m", "items": [{"entity_id": "e", "vector": [float("nan")]}]},
            ),
            f"hq-nan-{tag}",
            ("NaN",),
        ),
        (
            "embeddings: ragged",
            msg(
                job_id=f"hq-rag-{tag}",
                kind="embeddings",
                payload={
                    "model_id": f"hq-r-{tag}",
                    "items": [
                        {"entity_id": "a", "vector": [1, 2]},
                        {"entity_id": "b", "vector": [1]},
                    ],
                },
            ),
            f"hq-rag-{tag}",
            ("vector",),
        ),
        (
            "embeddings: blob with path parts",
            msg(
                job_id=f"hq-blob-{tag}",
                kind="embeddings",
                payload={"model_id": "m", "blob": "../x.npy"},
            ),
            f"hq-blob-{tag}",
            ("payload.blob",),
        ),
        (
            "embeddings: missing blob",
            msg(
                job_id=f"hq-nob-{tag}",
                kind="embeddings",
                payload={"model_id": "m", "blob": f"none-{tag}.npy"},
            ),
            f"hq-nob-{tag}",
            ("not found",),
        ),
        (
            "payload by a missing $blob",
            msg(
                job_id=f"hq-ref-{tag}",
                kind="model",
                payload={"$blob": f"job-payload-{uuid.uuid4().hex}.json", "bytes": 9},
            ),
            f"hq-ref-{tag}",
            ("does not exist",),
        ),
        (
            "payload by a $blob out of the container",
            msg(
                job_id=f"hq-reft-{tag}",
                kind="embeddings",
                payload={"$blob": "../models/iris.onnx", "bytes": 9},
            ),
            f"hq-reft-{tag}",
            ("not a payload blob this app wrote",),
        ),
        (
            "payload by a $blob of another kind",
            msg(job_id=f"hq-refo-{tag}", kind="model", payload={"$blob": "ids.json", "bytes": 9}),
            f"hq-refo-{tag}",
            ("not a payload blob this app wrote",),
        ),
        (
            "a 5000-digit number",
            '{"job_id": "hq-digits", "kind": "model", "payload": {"version_id": '
            + "9" * 5000
            + "}}",
            None,
            ("not JSON", "digits"),
        ),
        (
            "model: unknown version_id",
            msg(job_id=f"hq-um-{tag}", kind="model", payload={"version_id": f"none-{tag}"}),
            f"hq-um-{tag}",
            (),
        ),
        (
            "job_id with a lone surrogate",
            '{"job_id": "\\ud800", "kind": "model", "payload": {}}',
            None,
            ("job_id",),
        ),
        (
            "job_id with path parts",
            msg(job_id="../../jobs", kind="model", payload={"version_id": "m"}),
            None,
            ("job_id",),
        ),
        (
            "a succeeded job's id, unknown kind",
            msg(job_id=good_id, kind="bake", payload={}),
            None,
            ("unknown job kind",),
        ),
        (
            "SQL in job_id",
            msg(job_id="x'; DROP TABLE jobs; --", kind="model", payload={"version_id": "m"}),
            None,
            ("job_id",),
        ),
    ]
    sent = []
    for name, body, job_id, words in cases:
        receipt = queue.send_message(body)
        sent.append((name, job_id or f"malformed-{receipt.id}", words))
    for name, job_id, words in sent:
        try:
            job = wait_for_job(app_host, job_id, timeout=60)
        except AssertionError as exc:
            recorder.record("queue", name, "failed job", "none", f"PROBLEM: no row {job_id}: {exc}")
            continue
        error = job.get("error") or ""
        if job["status"] != "failed" or not error:
            outcome = f"PROBLEM: job {job['status']}, error {error!r}"
        elif any(w.lower() not in error.lower() for w in words):
            outcome = f"PROBLEM: the reason does not name {words}: {error[:200]}"
        elif any(s in error for s in LEAKS):
            outcome = f"PROBLEM: the reason shows internals: {error[:200]}"
        else:
            outcome = f"failed job ({job['attempts']} attempt(s)): {error[:300]}"
        recorder.record("queue", name, "failed job with the reason", "failed", outcome)
    after = app_host.call("GET", f"/jobs/{good_id}").json()
    recorder.record(
        "queue",
        "the succeeded job a bad message named",
        "succeeded",
        after["status"],
        f"{after['status']}: untouched"
        if after["status"] == "succeeded" and not after["error"]
        else f"PROBLEM: {after}",
    )
    check_undisturbed(app_host, recorder, "queue")
    finish(recorder)


# -- SQL injection ----------------------------------------------------------------------

INJECTIONS = (
    "' OR 1=1 --",
    "x'; DROP TABLE jobs; --",
    '" OR ""="',
    "1; DELETE FROM embeddings",
    "') UNION SELECT name, sql FROM sqlite_master --",
    "%' OR '%'='",
)


def test_sql_injection_through_every_filter_and_path_parameter(
    app_host: Host, recorder: Recorder
) -> None:
    tag = uuid.uuid4().hex[:6]
    model_id = f"sqli-{tag}"
    put = app_host.call(
        "PUT",
        "/embeddings",
        {"model_id": model_id, "items": [{"entity_id": "keep", "vector": [1, 2]}]},
    )
    assert put.status == 200
    job = app_host.call(
        "POST",
        "/jobs",
        {"kind": "model", "job_id": f"sqli-{tag}", "payload": {"version_id": f"none-{tag}"}},
    )
    assert job.status == 202 and wait_for_job(app_host, f"sqli-{tag}")["status"] == "failed"
    before = _tables(app_host, model_id)

    cases: list[Case] = []
    for s in INJECTIONS:
        q = quote(s, safe="")
        cases += [
            Case(f"GET jobs?status={s}", "GET", f"/jobs?status={q}", words=("status",)),
            Case(f"GET jobs?kind={s}", "GET", f"/jobs?kind={q}", words=("kind",)),
            Case(f"GET jobs?limit={s}", "GET", f"/jobs?limit={q}", words=("limit",)),
            Case(f"GET jobs/{s}", "GET", f"/jobs/{q}", status=404, words=("no job",)),
            Case(f"POST jobs/{s}/retry", "POST", f"/jobs/{q}/retry", status=404, words=("no job",)),
            Case(f"GET models?status={s}", "GET", f"/models?status={q}", words=("status",)),
            Case(f"GET models/{s}", "GET", f"/models/{q}", status=404, words=("no model version",)),
            Case(
                f"GET embeddings/{s}",
                "GET",
                f"/embeddings/{q}?model_id={q}",
                status=404,
                words=("no embeddings",),
            ),
            Case(
                f"DELETE embeddings/keep?model_id={s}",
                "DELETE",
                f"/embeddings/keep?model_id={q}",
                status=404,
                words=("no embeddings",),
            ),
            Case(
                f"DELETE embeddings/{s}",
                "DELETE",
                f"/embeddings/{q}",
                status=404,
                words=("no embeddings",),
            ),
            Case(
                f"GET analytics/models/{s}",
                "GET",
                f"/analytics/models/{q}",
                status=404,
                words=("no model named",),
            ),
            Case(
                f"GET analytics/usage?bucket={s}",
                "GET",
                f"/analytics/usage?bucket={q}",
                words=("bucket",),
            ),
            Case(
                f"GET analytics/models?days={s}",
                "GET",
                f"/analytics/models?days={q}",
                words=("days",),
            ),
            Case(
                f"GET v2/models/{s}",
                "GET",
                f"/v2/models/{q}",
                words=("not a valid model name",),
            ),
        ]
    run_group(app_host, recorder, "sql-injection", cases)
    # A filter the schema lets through as text must match nothing, not everything. Every
    # injection here is a valid name to both (`name`: any text up to 128 characters;
    # `model_id`, `embedding_type`: any text without control characters), so each is
    # answered 200 with nothing found: a 400 would mean the text never reached SQL.
    for s in INJECTIONS:
        listed = app_host.call("GET", f"/models?name={quote(s, safe='')}")
        found = app_host.call(
            "POST", "/search", {"vector": [1, 2], "model_id": s, "embedding_type": s}
        )
        ok = listed.status == 200 and listed.json()["models"] == []
        ok = ok and found.status == 200 and found.json()["results"] == []
        recorder.record(
            "sql-injection",
            f"GET models?name={s} / search model_id={s}",
            "nothing matched",
            f"{listed.status}/{found.status}",
            f"{listed.status}/{found.status}: matched nothing"
            if ok
            else f"PROBLEM: {listed.body[:200]!r} {found.body[:200]!r}",
        )
    after = _tables(app_host, model_id)
    recorder.record(
        "sql-injection",
        "tables intact afterwards (jobs, models, embeddings, schema version)",
        "unchanged",
        "same" if after == before else "changed",
        "unchanged" if after == before else f"PROBLEM: before {before}, after {after}",
    )
    finish(recorder)


def _tables(host: Host, model_id: str) -> dict[str, Any]:
    """What the injections must not change: jobs, models, stored vectors, the schema."""
    jobs = host.call("GET", "/jobs?limit=1000")
    models = host.call("GET", "/models")
    keep = host.call("GET", f"/embeddings/keep?model_id={model_id}")
    schema = host.call("GET", "/database/schema")
    assert {r.status for r in (jobs, models, keep, schema)} == {200}
    return {
        "jobs": sorted(j["id"] for j in jobs.json()["jobs"]),
        "models": sorted(m["id"] for m in models.json()["models"]),
        "keep": keep.json()["embeddings"][0]["vector"],
        "schema": schema.json(),
    }


# -- limits, on a host of its own with small ones ---------------------------------------

REQUEST_LIMIT, UPLOAD_LIMIT, HOST_LIMIT = 2048, 4096, 8192


@pytest.fixture(scope="module")
def small_host(azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    """The app with small limits, on a queue and containers of its own (the module's
    main host keeps running)."""
    host = start_app(
        tmp_path_factory.mktemp("small"),
        azurite.connection_string,
        {
            "MAX_REQUEST_BYTES": str(REQUEST_LIMIT),
            "MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
            "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": str(HOST_LIMIT),
            "MAX_VECTOR_DIM": "16",
            "MAX_BATCH_ROWS": "4",
            "INGESTION_QUEUE": "hostile-small-jobs",
            "MODELS_CONTAINER": "hostile-small-models",
            "MODEL_UPLOADS_CONTAINER": "hostile-small-uploads",
            "MODEL_VERSIONS_CONTAINER": "hostile-small-versions",
            "INGEST_CONTAINER": "hostile-small-ingest",
        },
    )
    try:
        yield host
    finally:
        stop_host(host)


def test_bodies_over_every_limit(small_host: Host, recorder: Recorder) -> None:
    import base64

    pad = lambda n: json.dumps({"a": [1] * n}).encode()  # noqa: E731
    over_request = pad(REQUEST_LIMIT // 3 + 10)
    over_host = pad(HOST_LIMIT // 2)
    assert REQUEST_LIMIT < len(over_request) < HOST_LIMIT < len(over_host)
    cases = [
        Case(
            f"JSON body {len(over_request)} B > MAX_REQUEST_BYTES",
            "POST",
            "/vectors/norm",
            raw=over_request,
            status=413,
            words=("limit is 2048",),
        ),
        Case(
            f"JSON body {len(over_host)} B > FUNCTIONS_REQUEST_BODY_SIZE_LIMIT",
            "POST",
            "/vectors/norm",
            raw=over_host,
            status=413,
            words=("too large",),
        ),
        Case(
            f"search body {len(over_request)} B",
            "POST",
            "/search",
            raw=over_request,
            status=413,
            words=("limit",),
        ),
        Case(
            f"upsert body {len(over_request)} B",
            "PUT",
            "/embeddings",
            raw=over_request,
            status=413,
            words=("limit",),
        ),
        Case(
            f"model upload {UPLOAD_LIMIT + 1} B > MAX_UPLOAD_BYTES",
            "POST",
            "/models?name=too-big",
            raw=b"x" * (UPLOAD_LIMIT + 1),
            status=413,
            words=(str(UPLOAD_LIMIT),),
        ),
        Case(
            f"model upload {HOST_LIMIT + 1} B > host limit",
            "POST",
            "/models?name=too-big",
            raw=b"x" * (HOST_LIMIT + 1),
            status=413,
            words=("too large",),
        ),
        Case(
            "infer body over the limit",
            "POST",
            "/v2/models/m/infer",
            raw=over_request,
            status=413,
            words=("limit",),
        ),
        Case(
            "17 dimensions > MAX_VECTOR_DIM 16",
            "POST",
            "/vectors/norm",
            {"a": [1] * 17},
            words=("a", "17", "16"),
        ),
        Case(
            "b64 of 17 dimensions",
            "POST",
            "/vectors/norm",
            {"a": {"b64": base64.b64encode(b"\0" * 68).decode()}},
            words=("a", "limit"),
        ),
        Case(
            "5 rows > MAX_BATCH_ROWS 4",
            "POST",
            "/vectors/aggregate/centroid",
            {"vectors": [[1]] * 5},
            words=("vectors", "5 rows"),
        ),
        Case(
            "b64 shape [5, 1] rows > 4",
            "POST",
            "/vectors/norm",
            {"a": {"b64": base64.b64encode(b"\0" * 20).decode(), "shape": [5, 1]}},
            words=("a", "rows"),
        ),
        Case(
            "b64 shape [10**12, 10**12]",
            "POST",
            "/vectors/norm",
            {"a": {"b64": "AAAA", "shape": [10**12, 10**12]}},
            words=("a", "limit"),
        ),
        Case(
            "upsert 5 items",
            "PUT",
            "/embeddings",
            {"model_id": "m", "items": [{"entity_id": str(i), "vector": [1]} for i in range(5)]},
            words=("items",),
        ),
        Case(
            "Content-Length beyond the host limit, no body",
            "POST",
            "/vectors/norm",
            raw=b"{}",
            headers={"Content-Length": str(HOST_LIMIT + 1)},
            status=413,
            words=("too large",),
        ),
    ]
    run_group(small_host, recorder, "limits", cases)
    finish(recorder)


def test_the_key_in_the_query_reaches_every_route_that_reads_a_query(
    app_host: Host, recorder: Recorder
) -> None:
    """`?code=<key>` authenticates as the header does; the routes' strict query models
    once refused it as an unknown field (found by the stateful run)."""
    paths = [
        "/jobs?status=failed",
        "/models",
        "/analytics/models?days=7",
        "/analytics/usage?bucket=week",
        "/embeddings/none?model_id=m",
    ]
    for path in paths:
        sep = "&" if "?" in path else "?"
        reply = app_host.call("GET", f"{path}{sep}code={app_host.key}", key=None)
        # Served: 200, or for the entity that has no vectors the route's own 404.
        embeddings = path.startswith("/embeddings")
        want, words = (404, ("no embeddings",)) if embeddings else (200, ())
        outcome = judge(reply, want, words)
        if not outcome.startswith("PROBLEM"):
            outcome = f"{reply.status}: served"
        recorder.record("auth", f"GET {path} with ?code=<key>", str(want), reply.status, outcome)
    finish(recorder)


def raw_http(port: int, request: bytes) -> Reply:
    """Bytes straight onto the socket (framing no client library would send); the reply
    is read until the server closes the connection."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return Reply(int(lines[0].split()[1]), body, headers)


def test_broken_http_framing(small_host: Host, recorder: Recorder) -> None:
    """What the HTTP layer refuses before any function runs: bad or doubled
    Content-Length, a non-ASCII request line, a chunked body past the host's limit."""
    key = f"x-functions-key: {small_host.key}\r\n".encode()
    post = b"POST /api/vectors/norm HTTP/1.1\r\nHost: h\r\nConnection: close\r\n" + key
    chunk = b"1000\r\n" + b"a" * 4096 + b"\r\n"
    cases = [
        ("Content-Length: abc", post + b"Content-Length: abc\r\n\r\n{}", 400, "Invalid HTTP"),
        ("Content-Length: -5", post + b"Content-Length: -5\r\n\r\n{}", 400, "Invalid HTTP"),
        (
            "two Content-Length headers",
            post + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
            400,
            "Invalid HTTP",
        ),
        (
            "raw 0xff byte in the path",
            b"GET /api/jobs/\xff HTTP/1.1\r\nHost: h\r\nConnection: close\r\n" + key + b"\r\n",
            400,
            "Invalid HTTP",
        ),
        (
            f"chunked body of {3 * 4096} B > host limit {HOST_LIMIT}",
            post + b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 3 + b"0\r\n\r\n",
            413,
            "too large",
        ),
    ]
    for name, request, status, words in cases:
        reply = raw_http(small_host.port, request)
        recorder.record("http", name, str(status), reply.status, judge(reply, status, (words,)))
    check_undisturbed(small_host, recorder, "http")
    finish(recorder)
