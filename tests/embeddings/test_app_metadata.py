"""Metadata on PUT/GET/PATCH /api/embeddings, and `filter` / `include_metadata` on
POST /api/search, through the local host."""

from __future__ import annotations

import json
import urllib.parse
import uuid
from typing import Any

import numpy as np

from tests.search.reference import reference
from tests.support.host import Host, wait_for_job


def _rows(n: int, seed: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32)


def _meta(i: int) -> dict | None:
    if i % 6 == 5:
        return None
    return {"genre": ["drama", "comedy", "news"][i % 3], "year": 2000 + i, "tags": [f"t{i % 4}"]}


def _put(app_host: Host, model: str, vectors: np.ndarray) -> None:
    items = []
    for i, v in enumerate(vectors):
        item: dict = {"entity_id": f"e{i}", "vector": v.tolist()}
        if _meta(i) is not None:
            item["metadata"] = _meta(i)
        items.append(item)
    reply = app_host.call("PUT", "/embeddings", {"model_id": model, "items": items})
    assert reply.status == 200, reply.body


def test_metadata_round_trips_and_is_patched_without_the_vector(app_host: Host) -> None:
    model = f"m-meta-{uuid.uuid4().hex[:6]}"
    vectors = _rows(6)
    _put(app_host, model, vectors)
    got = app_host.call("GET", f"/embeddings/e1?model_id={model}").json()["embeddings"][0]
    assert got["metadata"] == _meta(1)
    assert (
        app_host.call("GET", f"/embeddings/e5?model_id={model}").json()["embeddings"][0]["metadata"]
        is None
    )

    patch = {"model_id": model, "metadata": {"genre": "news", "year": 1999}}
    reply = app_host.call("PATCH", "/embeddings/e1", patch)
    assert reply.status == 200, reply.body
    assert reply.json()["metadata"] == {"genre": "news", "year": 1999}
    got = app_host.call("GET", f"/embeddings/e1?model_id={model}").json()["embeddings"][0]
    assert got["metadata"] == {"genre": "news", "year": 1999}
    assert np.float32(got["vector"]).tolist() == vectors[1].tolist()
    # The patched row is found by the new value at once (the set's version moved).
    search = {"vector": vectors[1].tolist(), "top_k": 3, "model_id": model}
    hits = app_host.call("POST", "/search", {**search, "filter": {"year": 1999}}).json()
    assert [h["entity_id"] for h in hits["results"]] == ["e1"]

    reply = app_host.call("PATCH", "/embeddings/nobody", patch)
    assert reply.status == 404, reply.body
    reply = app_host.call("PATCH", "/embeddings/e1", {**patch, "metadata": {"x": {"y": 1}}})
    assert reply.status == 400 and reply.json()["error"]["field"].startswith("metadata")

    # A write without metadata replaces the row: it keeps none.
    body = {"model_id": model, "items": [{"entity_id": "e1", "vector": vectors[1].tolist()}]}
    assert app_host.call("PUT", "/embeddings", body).status == 200
    got = app_host.call("GET", f"/embeddings/e1?model_id={model}").json()["embeddings"][0]
    assert got["metadata"] is None


def test_bad_metadata_names_the_item(app_host: Host) -> None:
    items = [
        {"entity_id": "a", "vector": [1, 2], "metadata": {"ok": "yes"}},
        {"entity_id": "b", "vector": [1, 2], "metadata": {"tags": ["x", 3]}},
    ]
    reply = app_host.call("PUT", "/embeddings", {"model_id": "m-badmeta", "items": items})
    assert reply.status == 400, reply.body
    assert reply.json()["error"]["field"].startswith("items[1].metadata.tags")
    big = {"entity_id": "c", "vector": [1, 2], "metadata": {"text": "x" * 9000}}
    reply = app_host.call("PUT", "/embeddings", {"model_id": "m-badmeta", "items": [big]})
    assert reply.status == 400 and reply.json()["error"]["field"].startswith("items[0].metadata")
    assert app_host.call("GET", "/embeddings/a?model_id=m-badmeta").status == 404


def test_filtered_search_returns_the_top_matching_rows_with_metadata(app_host: Host) -> None:
    model = f"m-filter-{uuid.uuid4().hex[:6]}"
    vectors = _rows(60)
    _put(app_host, model, vectors)
    spec = {"genre": {"$in": ["drama", "news"]}, "year": {"$gte": 2010}}
    match = np.array(
        [i for i in range(60) if (m := _meta(i)) and m["genre"] != "comedy" and m["year"] >= 2010]
    )
    queries = _rows(3, seed=9)
    for metric in ("cosine", "euclidean", "dot"):
        body = {"top_k": 5, "metric": metric, "model_id": model, "filter": spec}
        one = app_host.call(
            "POST", "/search", {**body, "vector": queries[0].tolist(), "include_metadata": True}
        )
        assert one.status == 200, one.body
        want = match[reference(vectors[match], queries[0], 5, metric)]
        hits = one.json()["results"]
        assert [h["entity_id"] for h in hits] == [f"e{i}" for i in want]
        assert [h["metadata"] for h in hits] == [_meta(i) for i in want]
        many = app_host.call("POST", "/search", {**body, "vectors": queries.tolist()}).json()
        for q, found in zip(queries, many["results"], strict=True):
            want = match[reference(vectors[match], q, 5, metric)]
            assert [h["entity_id"] for h in found] == [f"e{i}" for i in want]
            assert all(h.get("metadata") is None for h in found)  # not asked for
    none = {"vector": queries[0].tolist(), "model_id": model, "filter": {"genre": "opera"}}
    assert app_host.call("POST", "/search", none).json()["results"] == []
    few = {"vector": queries[0].tolist(), "model_id": model, "top_k": 50, "filter": spec}
    assert len(app_host.call("POST", "/search", few).json()["results"]) == match.size


def test_a_bad_filter_is_a_400_naming_its_path(app_host: Host) -> None:
    body = {"vector": [1, 2], "filter": {"year": {"$gte": "2020"}}}
    reply = app_host.call("POST", "/search", body)
    assert reply.status == 400, reply.body
    assert reply.json()["error"]["field"] == "filter.year.$gte"
    reply = app_host.call("POST", "/search", {"vector": [1, 2], "filter": {"a": {"$near": 1}}})
    assert reply.status == 400 and reply.json()["error"]["field"].startswith("filter.a")


def test_an_embeddings_job_stores_inline_metadata(app_host: Host) -> None:
    model = f"m-jobmeta-{uuid.uuid4().hex[:6]}"
    items = [
        {"entity_id": "j0", "vector": [1.0, 0.0], "metadata": {"lang": "en"}},
        {"entity_id": "j1", "vector": [0.0, 1.0]},
    ]
    job_id = f"meta-{uuid.uuid4().hex[:8]}"
    payload = {"model_id": model, "items": items}
    reply = app_host.call(
        "POST", "/jobs", {"kind": "embeddings", "job_id": job_id, "payload": payload}
    )
    assert reply.status == 202, reply.body
    assert wait_for_job(app_host, job_id)["status"] == "succeeded"
    got = app_host.call("GET", f"/embeddings/j0?model_id={model}").json()["embeddings"][0]
    assert got["metadata"] == {"lang": "en"}
    bad = {"model_id": model, "items": [{"entity_id": "x", "vector": [1.0], "metadata": {"a": {}}}]}
    reply = app_host.call("POST", "/jobs", {"kind": "embeddings", "payload": bad})
    assert reply.status == 400, reply.body
    assert "items" in reply.json()["error"]["field"]


def _q(value: Any) -> str:
    return urllib.parse.quote(json.dumps(value), safe="")


def test_list_count_and_delete_by_filter_through_the_host(app_host: Host) -> None:
    model = f"m-list-{uuid.uuid4().hex[:6]}"
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((12, 4)).astype(np.float32)
    items = [
        {
            "entity_id": f"e{i}",
            "vector": v.tolist(),
            "metadata": {"tenant": "acme" if i % 3 else "globex", "year": 2010 + i},
        }
        for i, v in enumerate(vectors)
    ]
    assert app_host.call("PUT", "/embeddings", {"model_id": model, "items": items}).status == 200

    acme = {"tenant": "acme"}
    walked: list[str] = []
    cursor = None
    while True:
        path = f"/embeddings?model_id={model}&limit=3&filter={_q(acme)}"
        reply = app_host.call("GET", path + (f"&cursor={cursor}" if cursor else ""))
        assert reply.status == 200, reply.body
        page = reply.json()
        assert len(page["items"]) <= 3
        walked += [item["entity_id"] for item in page["items"]]
        assert all(item["metadata"]["tenant"] == "acme" for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == [f"e{i}" for i in range(12) if i % 3]

    count = app_host.call("GET", f"/embeddings/count?model_id={model}&filter={_q(acme)}")
    assert count.status == 200 and count.json() == {"count": 8}
    assert app_host.call("GET", f"/embeddings/count?model_id={model}").json() == {"count": 12}

    doomed = {"tenant": "acme", "year": {"$lt": 2016}}
    reply = app_host.call("POST", "/embeddings/delete", {"model_id": model, "filter": doomed})
    assert reply.status == 200 and reply.json() == {"deleted": 4}, reply.body
    # The set's version moved: a search sees the deletion at once.
    search = {"vector": vectors[1].tolist(), "top_k": 12, "model_id": model, "metric": "cosine"}
    hits = [h["entity_id"] for h in app_host.call("POST", "/search", search).json()["results"]]
    assert sorted(hits) == sorted(f"e{i}" for i in range(12) if not (i % 3 and i < 6))
    assert app_host.call("GET", f"/embeddings/count?model_id={model}").json() == {"count": 8}

    # The 400s name what is wrong.
    listing = f"/embeddings?model_id={model}"
    counting = f"/embeddings/count?model_id={model}"
    for path, field in [
        (f"{listing}&limit=0", "limit"),
        (f"{listing}&limit=1001", "limit"),
        (f"{listing}&cursor=nonsense", "cursor"),
        (f"{listing}&filter=%7Bnot-json", "filter"),
        (f"{listing}&filter=%7B{'a' * 1500}", "filter"),  # longer than a URL may carry
        (f"{listing}&filter={_q({'year': {'$gte': '2020'}})}", "filter.year.$gte"),
        (f"{counting}&filter={_q({'year': {'$in': 3}})}", "filter.year.$in"),
    ]:
        reply = app_host.call("GET", path)
        assert reply.status == 400 and reply.json()["error"]["field"] == field, (path, reply.body)
    reply = app_host.call("POST", "/embeddings/delete", {"model_id": model})
    assert reply.status == 400 and reply.json()["error"]["field"] == "filter", reply.body
    reply = app_host.call("POST", "/embeddings/delete", {"model_id": model, "filter": {"$nor": []}})
    assert reply.status == 400 and reply.json()["error"]["field"] == "filter.$nor", reply.body

    # {} empties the set.
    reply = app_host.call("POST", "/embeddings/delete", {"model_id": model, "filter": {}})
    assert reply.json() == {"deleted": 8}
    assert app_host.call("GET", f"/embeddings?model_id={model}").json() == {
        "items": [],
        "next_cursor": None,
    }
