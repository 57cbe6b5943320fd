"""Which version serves, from memory between reads of the models table, and the log row
each call leaves (InferenceService on a real SQLite registry, sessions and files)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from shared.inference.protocol.types import InferRequest
from shared.inference.service import DEFAULT_REFRESH_SECONDS
from shared.inference.sessions import SessionCache
from shared.registry.errors import InferenceInputError, ModelNotReadyError
from tests.support.inference import Harness
from tests.support.models import iris, write_classifier, write_logistic, write_regressor


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(harness: Harness) -> Clock:
    clock = Clock()
    harness.service.clock = clock
    return clock


def request_for(x: np.ndarray) -> InferRequest:
    return InferRequest(
        inputs=[{"name": "X", "shape": list(x.shape), "datatype": "FP32", "data": x.tolist()}]
    )


def test_the_log_row_is_written_with_every_field(harness: Harness, tmp_path: Path) -> None:
    record = harness.register("iris", write_classifier(tmp_path))
    x = iris()[0][:3]
    before = datetime.now(UTC).replace(tzinfo=None)
    response = harness.service.infer("iris", None, request_for(x))
    bad = InferRequest(
        inputs=[{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]
    )
    with pytest.raises(InferenceInputError) as err:
        harness.service.infer("iris", 1, bad)
    assert harness.service.flush() is True
    after = datetime.now(UTC).replace(tzinfo=None)

    rows = harness.db.query(
        "SELECT version_id, model_name, model_version, latency_ms, rows, confidence, outcome, "
        "error, created_at FROM inference_log ORDER BY id"
    )
    ok, failed = rows
    confidence = response.parameters["confidence"]
    assert {k: v for k, v in ok.items() if k not in ("latency_ms", "created_at")} == {
        "version_id": record.id,
        "model_name": "iris",
        "model_version": 1,
        "rows": 3,
        "confidence": pytest.approx(sum(confidence) / len(confidence), rel=1e-12),
        "outcome": "succeeded",
        "error": None,
    }
    assert {k: v for k, v in failed.items() if k not in ("latency_ms", "created_at")} == {
        "version_id": record.id,
        "model_name": "iris",
        "model_version": 1,
        "rows": 0,
        "confidence": None,
        "outcome": "failed",
        "error": err.value.reason,
    }
    for row in rows:
        assert row["latency_ms"] > 0
        # the stored text format (naive UTC, milliseconds), stamped at the call
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", row["created_at"])
        stamped = datetime.fromisoformat(row["created_at"])
        assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= stamped <= after


def test_calls_within_the_refresh_time_ask_the_models_table_nothing(
    harness: Harness, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.register("iris", write_classifier(tmp_path))
    reads: list[str] = []  # what the real repository was asked, in order

    def counted(method: str):
        real = getattr(harness.models, method)

        def read(*args, **kwargs):
            reads.append(method)
            return real(*args, **kwargs)

        return read

    for method in ("latest", "get_version"):
        monkeypatch.setattr(harness.models, method, counted(method))
    x = iris()[0][:1]
    for _ in range(5):
        harness.service.infer("iris", None, request_for(x))
    assert reads == ["latest"]  # the first call resolved; four were served from memory
    clock.now += DEFAULT_REFRESH_SECONDS
    harness.service.infer("iris", None, request_for(x))
    assert reads == ["latest", "latest"]  # read again once the time is up


def test_a_new_ready_version_serves_unversioned_calls_after_the_refresh_time(
    harness: Harness, tmp_path: Path, clock: Clock
) -> None:
    harness.register("m", write_classifier(tmp_path))
    x = iris()[0][:2]
    assert harness.service.infer("m", None, request_for(x)).model_version == "1"

    harness.register("m", write_logistic(tmp_path))  # version 2, ready
    clock.now += DEFAULT_REFRESH_SECONDS - 0.01
    # the rule: what was resolved serves until refresh_seconds have passed
    assert harness.service.infer("m", None, request_for(x)).model_version == "1"
    clock.now += 0.01
    assert harness.service.infer("m", None, request_for(x)).model_version == "2"
    assert harness.service.infer("m", 1, request_for(x)).model_version == "1"  # asked for


def test_a_metadata_request_picks_a_new_version_up_at_once(
    harness: Harness, tmp_path: Path, clock: Clock
) -> None:
    harness.register("m", write_classifier(tmp_path))
    x = iris()[0][:2]
    assert harness.service.infer("m", None, request_for(x)).model_version == "1"
    harness.register("m", write_logistic(tmp_path))
    assert harness.service.metadata("m")["versions"] == ["1", "2"]  # resolves "m" again
    assert harness.service.infer("m", None, request_for(x)).model_version == "2"


def test_a_version_marked_failed_stops_serving(
    harness: Harness, tmp_path: Path, clock: Clock
) -> None:
    record = harness.register("m", write_classifier(tmp_path))
    x = iris()[0][:2]
    harness.service.infer("m", None, request_for(x))
    harness.service.infer("m", 1, request_for(x))
    harness.models.set_status(record.id, "failed", error="blob deleted")

    clock.now += DEFAULT_REFRESH_SECONDS
    with pytest.raises(ModelNotReadyError) as err:
        harness.service.infer("m", None, request_for(x))
    assert err.value.reason == "model 'm' is failed: blob deleted"
    with pytest.raises(ModelNotReadyError) as err:
        harness.service.infer("m", 1, request_for(x))
    assert err.value.reason == "model 'm' version 1 is failed: blob deleted"
    # refusals are not remembered: ready again, served by the next call
    harness.models.set_status(record.id, "ready")
    assert harness.service.infer("m", None, request_for(x)).model_version == "1"
    outcomes = [r.outcome for r in reversed(harness.log.recent("m"))]
    assert outcomes == ["succeeded", "succeeded", "failed", "failed", "succeeded"]


def test_a_version_not_yet_ready_is_served_by_the_first_call_once_ready(
    harness: Harness, tmp_path: Path, clock: Clock
) -> None:
    record = harness.register("m", write_classifier(tmp_path), ready=False)
    x = iris()[0][:2]
    with pytest.raises(ModelNotReadyError):
        harness.service.infer("m", None, request_for(x))
    harness.models.set_status(record.id, "ready")
    assert harness.service.infer("m", None, request_for(x)).model_version == "1"  # no wait


def test_calls_keep_their_session_recently_used_and_reload_it_once_evicted(
    harness: Harness, tmp_path: Path, clock: Clock
) -> None:
    harness.service.sessions = sessions = SessionCache(2)
    a = harness.register("a", write_classifier(tmp_path, "a.onnx"))
    b = harness.register("b", write_logistic(tmp_path, "b.onnx"))
    c = harness.register("c", write_regressor(tmp_path, "c.onnx"))
    x = iris()[0][:2]
    harness.service.infer("a", None, request_for(x))
    harness.service.infer("b", None, request_for(x))
    harness.service.infer("a", None, request_for(x))  # from memory: still marks a as used
    harness.service.infer("c", None, request_for(np.ascontiguousarray(x[:, :3])))
    assert sessions.keys() == [a.id, c.id]  # b was the least recently used
    assert harness.service.infer("b", None, request_for(x)).model_version == "1"
    assert sessions.keys() == [c.id, b.id] and sessions.loads == 4
