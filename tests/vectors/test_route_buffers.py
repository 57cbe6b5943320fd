"""The vector routes decode into pooled buffers and always give them back."""

import json

import azure.functions as func

from shared.vectors.pool import default_pool
from shared.vectors.routes import vector_aggregate, vector_op


def _req(op: str, body: dict, route: str = "vectors/{op}") -> func.HttpRequest:
    return func.HttpRequest(
        "POST",
        f"http://localhost/api/{route}",
        headers={"content-type": "application/json"},
        route_params={"op": op},
        body=json.dumps(body).encode(),
    )


def _outstanding() -> int:
    s = default_pool().stats()
    return s.rents - s.returns


def test_every_rented_buffer_goes_back_on_success_and_on_error() -> None:
    before = _outstanding()
    ok = vector_op(_req("dot", {"a": [[1, 2], [3, 4]], "b": [1, 1]}))
    assert ok.status_code == 200 and json.loads(ok.get_body())["result"] == [3, 7]
    bad = vector_op(_req("dot", {"a": [1, 2], "b": [1, 2, 3]}))
    assert bad.status_code == 400
    agg = vector_aggregate(_req("centroid", {"vectors": [[0, 2], [2, 0]]}))
    assert json.loads(agg.get_body())["result"] == [1, 1]
    assert _outstanding() == before
    hits = default_pool().stats().hits
    for _ in range(5):
        vector_op(_req("cosine", {"a": [[1, 2], [3, 4]], "b": [1, 1]}))
    assert default_pool().stats().hits >= hits + 5  # steady state reuses buffers
