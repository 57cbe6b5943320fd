"""POST /api/vectors/* through the local host: results, formats and 4xx messages."""

import base64

import numpy as np
import pytest

from shared.vectors import scalar
from tests.support.host import Host


def b64(x) -> dict:
    return {"b64": base64.b64encode(np.asarray(x, dtype="<f4").tobytes()).decode()}


def test_dot_of_two_vectors_matches_the_scalar_twin(app_host: Host) -> None:
    a, b = [1.5, -2.0, 3.0], [0.5, 4.0, -1.0]
    reply = app_host.call("POST", "/vectors/dot", {"a": a, "b": b})
    assert reply.status == 200, reply.body
    assert reply.json()["result"] == pytest.approx(
        scalar.dot_product(scalar.to_bytes(a), scalar.to_bytes(b)), rel=1e-6
    )


def test_cosine_one_to_many_with_base64_in_and_out(app_host: Host) -> None:
    rng = np.random.default_rng(1)
    q = rng.standard_normal(16).astype(np.float32)
    m = rng.standard_normal((4, 16)).astype(np.float32)
    body = {"a": b64(q), "b": {**b64(m), "shape": [4, 16]}, "format": "b64"}
    reply = app_host.call("POST", "/vectors/cosine", body)
    assert reply.status == 200, reply.body
    got = np.frombuffer(base64.b64decode(reply.json()["result"]["b64"]), dtype="<f4")
    want = [scalar.cosine_similarity(q.tobytes(), row.tobytes()) for row in m]
    assert np.allclose(got, want, atol=1e-6)


def test_cross_mode_returns_a_matrix(app_host: Host) -> None:
    body = {"a": [[1, 0], [0, 1], [1, 1]], "b": [[2, 3], [4, 5]], "mode": "cross"}
    reply = app_host.call("POST", "/vectors/dot", body)
    assert reply.json()["result"] == [[2, 4], [3, 5], [5, 9]]


def test_normalize_zero_vector_comes_back_unchanged(app_host: Host) -> None:
    assert app_host.call("POST", "/vectors/normalize", {"a": [0, 0, 0]}).json()["result"] == [
        0,
        0,
        0,
    ]
    assert app_host.call("POST", "/vectors/argmax", {"a": [1, 9, 3]}).json()["result"] == 1


def test_aggregates(app_host: Host) -> None:
    vecs = [[0, 0], [2, 0], [0, 2], [2, 2]]
    c = app_host.call("POST", "/vectors/aggregate/centroid", {"vectors": vecs}).json()
    assert c == {"op": "centroid", "count": 4, "result": [1, 1]}
    mv = app_host.call("POST", "/vectors/aggregate/mean_variance", {"vectors": vecs}).json()
    assert mv["result"] == {"count": 4, "mean": [1, 1], "variance": [1, 1]}
    gm = app_host.call("POST", "/vectors/aggregate/geometric_median", {"vectors": vecs}).json()
    assert np.allclose(gm["result"], [1, 1], atol=1e-3)


@pytest.mark.parametrize(
    ("path", "body", "status", "field", "words"),
    [
        ("/vectors/dot", {"a": [1, 2], "b": [1, 2, 3]}, 400, "b", "dimension 3 does not match"),
        ("/vectors/dot", {"a": [1, "x"], "b": [1, 2]}, 400, "a", ""),
        ("/vectors/norm", {"a": {"b64": "AAAA="}}, 400, "a", ""),
        ("/vectors/norm", {"a": {"b64": base64.b64encode(b"12345").decode()}}, 400, "a", "4"),
        ("/vectors/scale", {"a": [1, 2]}, 400, "scalar", "required for scale"),
        ("/vectors/norm", {"a": [1, 2], "bogus": 1}, 400, "bogus", "unknown field"),
        ("/vectors/norm", {}, 400, "a", "required field is missing"),
        ("/vectors/frobnicate", {"a": [1]}, 404, "op", "not one of"),
        ("/vectors/norm", {"a": [1] * 5000}, 400, "a", "limit"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(
    app_host: Host, path: str, body: dict, status: int, field: str, words: str
) -> None:
    reply = app_host.call("POST", path, body)
    assert reply.status == status, reply.body
    err = reply.json()["error"]
    assert err["field"] == field
    assert words in err["message"]


def test_nan_is_refused(app_host: Host) -> None:
    reply = app_host.call("POST", "/vectors/norm", raw=b'{"a": [1, NaN]}')
    assert reply.status == 400
    assert reply.json()["error"]["field"] == "a"


def test_not_json_and_too_large_bodies(app_host: Host) -> None:
    reply = app_host.call("POST", "/vectors/norm", raw=b"{nope")
    assert reply.status == 400 and reply.json()["error"]["code"] == "invalid_json"
    big = b'{"a": [' + b"1," * (9 * 1024 * 1024) + b"1]}"
    reply = app_host.call("POST", "/vectors/norm", raw=big)
    assert reply.status == 413


def test_a_cross_of_more_than_a_million_scores_is_refused_before_it_is_computed(
    app_host: Host,
) -> None:
    """Rows are limited per operand, but cross squares them: unbounded, a 128 KB body asks
    for a 693 MB reply and stalls the host. 1001 x 1000 is one score too many."""

    def b64(rows: int) -> dict:
        m = np.ones((rows, 2), "<f4")
        return {"b64": base64.b64encode(m.tobytes()).decode(), "shape": [rows, 2]}

    body = {"a": b64(1001), "b": b64(1000), "mode": "cross"}
    reply = app_host.call("POST", "/vectors/dot", body)
    assert reply.status == 400, reply.body
    error = reply.json()["error"]
    assert (error["code"], error["field"]) == ("limit_exceeded", "b")
    assert "1,001,000 scores" in error["message"] and "1,000,000" in error["message"]
    body["a"] = b64(1000)
    reply = app_host.call("POST", "/vectors/dot", body)
    assert reply.status == 200 and len(reply.json()["result"]) == 1000
