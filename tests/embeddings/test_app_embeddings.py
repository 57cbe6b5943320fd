"""PUT/GET/DELETE /api/embeddings through the local host."""

import base64

import numpy as np

from tests.support.host import Host


def test_upsert_get_delete_round_trip(app_host: Host) -> None:
    body = {
        "model_id": "m-rt",
        "embedding_type": "text",
        "items": [
            {"entity_id": "doc-1", "vector": [0.5, 1.5, -2.0]},
            {
                "entity_id": "doc-2",
                "vector": {"b64": base64.b64encode(np.float32([1, 2, 3]).tobytes()).decode()},
            },
        ],
    }
    reply = app_host.call("PUT", "/embeddings", body)
    assert reply.status == 200, reply.body
    assert reply.json() == {
        "model_id": "m-rt",
        "embedding_type": "text",
        "dimension": 3,
        "inserted": 2,
        "updated": 0,
    }
    body["items"] = body["items"][:1]
    body["items"][0]["vector"] = [9, 9, 9]
    assert app_host.call("PUT", "/embeddings", body).json()["updated"] == 1

    got = app_host.call("GET", "/embeddings/doc-1?model_id=m-rt").json()
    assert got["entity_id"] == "doc-1"
    assert [e["vector"] for e in got["embeddings"]] == [[9, 9, 9]]
    got = app_host.call("GET", "/embeddings/doc-2?model_id=m-rt&format=b64").json()
    raw = base64.b64decode(got["embeddings"][0]["vector"]["b64"])
    assert np.frombuffer(raw, dtype="<f4").tolist() == [1, 2, 3]

    assert app_host.call("DELETE", "/embeddings/doc-1?model_id=m-rt").json()["deleted"] == 1
    assert app_host.call("GET", "/embeddings/doc-1?model_id=m-rt").status == 404
    assert app_host.call("DELETE", "/embeddings/doc-1?model_id=m-rt").status == 404


def test_bad_items_name_the_item(app_host: Host) -> None:
    body = {
        "model_id": "m-bad",
        "items": [{"entity_id": "a", "vector": [1, 2]}, {"entity_id": "b", "vector": [1, 2, 3]}],
    }
    reply = app_host.call("PUT", "/embeddings", body)
    assert reply.status == 400
    err = reply.json()["error"]
    assert err["field"] == "items[1].vector" and "does not match items[0].vector" in err["message"]
    reply = app_host.call("PUT", "/embeddings", {"model_id": "m-bad", "items": []})
    assert reply.status == 400 and reply.json()["error"]["field"] == "items"
    reply = app_host.call(
        "PUT", "/embeddings", {"model_id": "m-bad", "items": [{"entity_id": "", "vector": [1]}]}
    )
    assert reply.status == 400 and reply.json()["error"]["field"] == "items[0].entity_id"


def test_a_different_dimension_for_a_stored_set_is_a_409(app_host: Host) -> None:
    first = {"model_id": "m-dim", "items": [{"entity_id": "a", "vector": [1, 2]}]}
    assert app_host.call("PUT", "/embeddings", first).status == 200
    second = {"model_id": "m-dim", "items": [{"entity_id": "b", "vector": [1, 2, 3]}]}
    reply = app_host.call("PUT", "/embeddings", second)
    assert reply.status == 409
    assert "stores 2-dimensional vectors; got 3" in reply.json()["error"]["message"]


def test_deleting_a_row_through_the_host_removes_its_sets_snapshot(app_azurite, tmp_path) -> None:
    """The host's DELETE reaches the snapshot store: a compressed set's snapshot, which
    holds every row's vector, is gone once the delete answers."""
    import time
    import uuid

    from azure.storage.blob import BlobServiceClient

    from shared.search.snapshots import blob_name
    from tests.support.host import start_app, stop_host

    model = f"m-snap-{uuid.uuid4().hex[:8]}"
    settings = {"SEARCH_COMPRESS_FROM_ROWS": "100", "SEARCH_SNAPSHOT_SETTLE_SECONDS": "0"}
    host = start_app(tmp_path, app_azurite.connection_string, settings)
    try:
        vectors = np.random.default_rng(3).standard_normal((150, 8)).round(3).tolist()
        items = [{"entity_id": f"e{i}", "vector": v} for i, v in enumerate(vectors)]
        assert host.call("PUT", "/embeddings", {"model_id": model, "items": items}).status == 200
        search = {"vector": vectors[3], "top_k": 1, "metric": "euclidean", "model_id": model}
        assert host.call("POST", "/search", search).json()["results"][0]["entity_id"] == "e3"
        blob = BlobServiceClient.from_connection_string(
            app_azurite.connection_string
        ).get_blob_client("search-snapshots", blob_name(model, "default"))
        deadline = time.monotonic() + 60
        while not blob.exists():  # written in the background once the version held
            assert time.monotonic() < deadline, "no snapshot was written"
            time.sleep(0.2)
        assert host.call("DELETE", f"/embeddings/e3?model_id={model}").status == 200
        assert not blob.exists()
        hits = host.call("POST", "/search", search).json()["results"]
        assert hits[0]["entity_id"] != "e3"
    finally:
        stop_host(host)


def test_ids_that_get_and_delete_could_not_address_are_refused(app_host: Host) -> None:
    """An id with '/' (GET/DELETE take it as one path segment), an id over 256
    characters, a control character or a repeated id in a text store, once stored, could
    be neither read nor deleted: each is refused."""
    put = {"model_id": "m-ids", "items": [{"entity_id": "a/b", "vector": [1, 2]}]}
    reply = app_host.call("PUT", "/embeddings", put)
    assert reply.status == 400
    error = reply.json()["error"]
    assert error["field"] == "items[0].entity_id" and error["message"].startswith(
        "items[0].entity_id: '/' is not allowed"
    )
    put["items"] = [{"entity_id": "a", "vector": [1, 2]}, {"entity_id": "a", "vector": [3, 4]}]
    error = app_host.call("PUT", "/embeddings", put).json()["error"]
    assert error["field"] == "items" and "items[1].entity_id repeats 'a'" in error["message"]
    for ids, field, words in [
        (["x" * 300], "store.entity_ids[0]", "at most 256"),
        (["bad\n"], "store.entity_ids[0]", "pattern"),
        (["a/b"], "store.entity_ids[0]", "'/' is not allowed"),
        (["t1", "t1"], "store.entity_ids", "entity_ids[1] repeats 't1'"),
    ]:
        body = {"model": "no-such-model", "texts": ["a"] * len(ids), "store": {"entity_ids": ids}}
        reply = app_host.call("POST", "/embeddings/text", body)
        assert reply.status == 400, (ids, reply.body)
        error = reply.json()["error"]
        assert error["field"] == field and words in error["message"], (ids, error)


def test_search_with_neither_or_both_query_fields_names_the_field(app_host: Host) -> None:
    for body, field in [
        ({"top_k": 1}, "vector"),
        ({"vector": [1, 0], "vectors": [[1, 0]]}, "vectors"),
    ]:
        reply = app_host.call("POST", "/search", body)
        assert reply.status == 400, reply.body
        error = reply.json()["error"]
        assert (
            error["field"] == field and "exactly one of 'vector' or 'vectors'" in error["message"]
        )
