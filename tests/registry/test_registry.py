"""Model registration on Azurite + SQLite: versions, duplicates, the ingestion job."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from azure.storage.queue import QueueServiceClient

from shared.jobs.submit import JobQueue, JobSubmitter
from shared.models.registry import ModelRegistry, ingest_job_id
from shared.storage.names import InvalidNameError


@pytest.fixture
def queue(storage_connection: str) -> JobQueue:
    q = JobQueue(
        QueueServiceClient.from_connection_string(storage_connection), f"q-{uuid.uuid4().hex[:10]}"
    )
    q.ensure()
    return q


@pytest.fixture
def registry(repos, container, queue) -> ModelRegistry:
    jobs, models, _ = repos
    return ModelRegistry(models, container, JobSubmitter(jobs, queue))


def _messages(queue: JobQueue) -> list[dict]:
    return [json.loads(m.content) for m in queue.client.receive_messages(max_messages=32)]


def test_upload_registers_version_one_and_queues_one_ingestion_job(registry, queue) -> None:
    reg = registry.upload("iris", io.BytesIO(b"onnx bytes v1"), max_bytes=10_000)
    assert reg.created and reg.model.version == 1 and reg.model.status == "registered"
    assert reg.model.blob_name == f"_versions/iris/{reg.model.sha256}.onnx"
    assert reg.job.id == ingest_job_id(reg.model.id) and reg.job.status == "queued"
    msgs = _messages(queue)
    assert msgs == [
        {
            "job_id": reg.job.id,
            "kind": "model",
            "schema_version": 1,
            "payload": {"model_id": reg.model.id},
        }
    ]


def test_same_bytes_again_change_nothing_new_bytes_make_a_new_version(
    registry, queue, repos
) -> None:
    first = registry.upload("iris", io.BytesIO(b"v1"), max_bytes=100)
    again = registry.register_blob("iris.onnx")  # what the blob trigger does next
    assert not again.created and again.model.id == first.model.id
    second = registry.upload("iris", io.BytesIO(b"v2"), max_bytes=100)
    assert second.created and second.model.version == 2
    assert len(_messages(queue)) == 2  # one ingestion job per version, not per event
    # The old version's bytes stay readable under its archive name.
    assert registry.store.hash_pinned(first.model.blob_name).sha256 == first.model.sha256
    assert [m.version for m in repos[1].list(name="iris")] == [2, 1]


def test_blob_trigger_names_outside_the_pattern_are_refused(registry) -> None:
    with pytest.raises(InvalidNameError):
        registry.register_blob("_versions/iris/" + "a" * 64 + ".onnx")
    with pytest.raises(InvalidNameError):
        registry.upload("../up", io.BytesIO(b"x"), max_bytes=10)


def test_upload_is_registered_before_the_trigger_can_see_it(registry, repos) -> None:
    """The version exists by the time `<name>.onnx` does; no staging blob is left behind."""
    store = registry.store
    reg = registry.upload("iris", io.BytesIO(b"v1 bytes"), max_bytes=100)
    published = store.hash_pinned("iris.onnx")
    assert published.sha256 == reg.model.sha256 and published.size == len(b"v1 bytes")
    assert reg.model.metadata["uploaded_as"] == "iris.onnx"
    names = [b.name for b in store.service.get_container_client(store.container).list_blobs()]
    assert not [n for n in names if n.startswith("_uploads/")], names
    assert registry.register_blob("iris.onnx").created is False


def test_upload_over_the_limit_leaves_nothing(registry, repos) -> None:
    from shared.storage.blob_store import UploadTooLargeError

    with pytest.raises(UploadTooLargeError):
        registry.upload("big", io.BytesIO(b"x" * 5000), max_bytes=1000)
    store = registry.store
    assert list(store.service.get_container_client(store.container).list_blobs()) == []
    assert repos[1].list(name="big") == []


def test_blob_trigger_ignores_staging_names(registry) -> None:
    with pytest.raises(InvalidNameError):
        registry.register_blob("_uploads/" + "a" * 32 + ".onnx")


def test_staging_blobs_left_by_dead_uploads_are_swept(registry) -> None:
    from datetime import timedelta

    store = registry.store
    stray = "_uploads/" + "b" * 32 + ".onnx"
    store.upload(stray, io.BytesIO(b"half an upload"))
    assert store.sweep_staging(timedelta(hours=1)) == 0  # too young: maybe still running
    assert store.exists(stray)
    assert store.sweep_staging(timedelta(0)) == 1
    assert not store.exists(stray)
