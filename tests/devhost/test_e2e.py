"""The local host end to end: a subprocess on a real Azurite, called over real HTTP."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import pytest

from tests.support.host import (
    FIXTURE_BODY_LIMIT,
    FIXTURE_KEY,
    FIXTURE_MASTER_KEY,
    Host,
    b64,
    unb64,
    wait_for,
)

pytestmark = pytest.mark.e2e


def test_health_and_route_parameters(devhost: Host) -> None:
    reply = devhost.call("GET", "/health")
    assert (reply.status, reply.body) == (200, b"ok")

    reply = devhost.call("GET", "/items/42?q=x")
    assert reply.status == 200
    assert reply.json() == {  # a func.Context too, and the full URL
        "id": "42",
        "q": "x",
        "fn": "item",
        "url": devhost.base_url + "/items/42?q=x",
    }
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["x-content-type-options"] == "nosniff"  # host.json customHeaders

    assert devhost.call("GET", "/items/abc").status == 404  # {id:int} does not take "abc"
    assert devhost.call("GET", "/items/latest").body == b"latest"  # the literal wins
    assert devhost.call("GET", "/nowhere").status == 404
    assert devhost.call("POST", "/health").status == 405
    assert devhost.call("GET", "/boom").status == 500
    log = devhost.wait_for_log("Executed 'Functions.boom' (Failed, Id=")
    assert "Executed 'Functions.health' (Succeeded, Id=" in log
    assert "RuntimeError: boom on purpose" in log


def test_function_keys(devhost: Host) -> None:
    assert devhost.call("GET", "/secure").status == 401
    assert devhost.call("GET", "/secure", headers={"x-functions-key": "wrong"}).status == 401
    assert devhost.call("GET", "/secure?code=wrong").status == 401

    reply = devhost.call("GET", "/secure", headers={"x-functions-key": FIXTURE_KEY})
    assert (reply.status, reply.body, reply.headers.get("x-seen")) == (200, b"secret", "yes")
    assert devhost.call("GET", f"/secure?code={FIXTURE_KEY}").status == 200
    assert devhost.call("GET", f"/secure?code={FIXTURE_MASTER_KEY}").status == 200

    # ADMIN takes only the master key
    assert devhost.call("GET", f"/admin-only?code={FIXTURE_KEY}").status == 401
    assert (
        devhost.call("GET", "/admin-only", headers={"x-functions-key": FIXTURE_MASTER_KEY}).status
        == 200
    )


def test_queue_message_runs_writes_output_and_is_deleted(devhost: Host) -> None:
    body = json.dumps({"job": "e2e", "n": 1})
    devhost.queue("jobs").send_message(b64(body))

    results = devhost.queue("results")
    messages = wait_for(lambda: results.peek_messages(max_messages=5), what="the output message")
    assert len(messages) == 1
    seen = json.loads(unb64(messages[0].content))  # outputs use the same base64 encoding
    assert seen["body"] == body
    assert seen["dequeue_count"] == 1
    assert seen["id"] and seen["has_times"] is True

    jobs = devhost.queue("jobs")
    wait_for(
        lambda: jobs.get_queue_properties().approximate_message_count == 0,
        what="the trigger message to be deleted",
    )
    assert devhost.queue("jobs-poison").peek_messages() == []


def test_async_queue_function_with_str_and_list_return(devhost: Host) -> None:
    devhost.queue("shout").send_message(b64("hello"))
    shouted = devhost.queue("shouted")
    found = wait_for(
        lambda: len(m := shouted.peek_messages(max_messages=5)) == 2 and m, what="two messages"
    )
    assert [unb64(m.content) for m in found] == ["HELLO", "HELLO!"]


def test_failing_message_goes_to_poison_after_five_tries(devhost: Host) -> None:
    original = b64("poison me, please")
    devhost.queue("failing").send_message(original)

    poison = devhost.queue("failing-poison")
    moved = wait_for(lambda: poison.peek_messages(max_messages=5), what="the poison message")
    assert [m.content for m in moved] == [original]  # the original text, untouched
    tries = devhost.records("failing")
    assert [t["dequeue_count"] for t in tries] == [1, 2, 3, 4, 5]
    assert {t["body"] for t in tries} == {"poison me, please"}
    assert devhost.queue("failing").get_queue_properties().approximate_message_count == 0


def test_invalid_base64_counts_as_a_failure(devhost: Host) -> None:
    devhost.queue("jobs").send_message("plain text is not base64 here!")
    poison = devhost.queue("jobs-poison")
    moved = wait_for(lambda: poison.peek_messages(max_messages=5), what="the poison message")
    assert [m.content for m in moved] == ["plain text is not base64 here!"]


def test_blob_fires_once_per_version(devhost: Host) -> None:
    uploads = devhost.blobs().get_container_client(f"{devhost.ns}-uploads")
    uploads.upload_blob("reports/q1.txt", b"version one")
    uploads.upload_blob("ignored.bin", b"does not match {name}.txt")

    wait_for(lambda: devhost.records("upload"), what="the blob function")
    time.sleep(1.2)  # six scans at 0.2 s: a second fire would show up
    calls = devhost.records("upload")
    assert calls == [
        {
            "stream_name": f"{devhost.ns}-uploads/reports/q1.txt",
            "length": 11,
            "content": "version one",
        }
    ]
    copies = devhost.blobs().get_container_client(f"{devhost.ns}-copies")
    # the blob output path "{name}.copy" proves {name} was bound to "reports/q1"
    assert copies.download_blob("reports/q1.copy").readall() == b"version one"

    uploads.upload_blob("reports/q1.txt", b"version two", overwrite=True)
    wait_for(lambda: len(devhost.records("upload")) == 2, what="the second fire")
    time.sleep(1.2)
    calls = devhost.records("upload")
    assert [c["content"] for c in calls] == ["version one", "version two"]
    assert copies.download_blob("reports/q1.copy").readall() == b"version two"

    receipts = devhost.blobs().get_container_client("azure-webjobs-hosts")
    prefix = "blobreceipts/fixture-app/upload/"
    names = [b.name for b in receipts.list_blobs(name_starts_with=prefix)]
    assert len([n for n in names if n.endswith(f"/{devhost.ns}-uploads/reports/q1.txt")]) == 2


def test_blob_client_binding_streams(devhost: Host) -> None:
    models = devhost.blobs().get_container_client(f"{devhost.ns}-models")
    models.upload_blob("big/model.onnx", b"\x00" * 300_000)
    events = devhost.queue("model-events")
    found = wait_for(lambda: events.peek_messages(max_messages=5), what="the $return output")
    assert json.loads(unb64(found[0].content)) == {
        "type": "BlobClient",
        "blob": "big/model.onnx",
        "size": 300_000,
    }


def test_body_size_limit(devhost: Host) -> None:
    small = devhost.call("POST", "/echo", raw=b"x" * 100)
    assert (small.status, small.json()) == (200, {"length": 100})
    assert devhost.call("POST", "/echo", raw=b"x" * FIXTURE_BODY_LIMIT).json() == {
        "length": FIXTURE_BODY_LIMIT
    }

    assert devhost.call("POST", "/echo", raw=b"x" * (FIXTURE_BODY_LIMIT + 1)).status == 413

    # no Content-Length: the limit holds while the body streams in
    url = urlsplit(devhost.base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    chunks = iter([b"y" * 3000, b"y" * 3000])
    connection.request("POST", url.path + "/echo", body=chunks, encode_chunked=True)
    assert connection.getresponse().status == 413
    connection.close()
