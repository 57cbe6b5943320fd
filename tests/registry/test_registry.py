"""Model registration on Azurite + SQLite: versions, duplicates, the ingestion job."""

from __future__ import annotations

import io
import json
import uuid

import pytest

from shared.jobs.payloads import PayloadStore
from shared.jobs.submit import JobQueue, JobSubmitter
from shared.registry.service import ModelRegistry, ingest_job_id
from shared.storage.blob_store import BlobModelStore
from shared.storage.names import InvalidNameError

LIMIT = 10_000


@pytest.fixture
def registry(repos, container, blob_service, queue) -> ModelRegistry:
    """Three containers, as deployed: uploads (the trigger's), versions and staging. The
    last two do not exist yet: the registry creates them on first write."""
    jobs, models, _ = repos
    suffix = uuid.uuid4().hex[:10]
    return ModelRegistry(
        models,
        uploads=container,
        versions=BlobModelStore(blob_service, f"versions-{suffix}"),
        staging=BlobModelStore(blob_service, f"staging-{suffix}"),
        submitter=JobSubmitter(jobs, queue, PayloadStore(container)),
        max_bytes=LIMIT,
    )


def _messages(queue: JobQueue) -> list[dict]:
    return [json.loads(m.content) for m in queue.client.receive_messages(max_messages=32)]


def _names(store: BlobModelStore) -> list[str]:
    container = store.service.get_container_client(store.container)
    return [b.name for b in container.list_blobs()] if container.exists() else []


def test_upload_registers_version_one_and_queues_one_ingestion_job(registry, queue) -> None:
    reg = registry.upload("iris", io.BytesIO(b"onnx bytes v1"), max_bytes=10_000)
    assert reg.created and reg.model.version == 1 and reg.model.status == "registered"
    assert reg.model.blob_name == f"iris/{reg.model.sha256}.onnx"
    assert reg.model.blob_uri.endswith(f"/{registry.versions.container}/{reg.model.blob_name}")
    assert reg.job.id == ingest_job_id(reg.model.id) and reg.job.status == "queued"
    msgs = _messages(queue)
    assert msgs == [
        {
            "job_id": reg.job.id,
            "kind": "model",
            "schema_version": 1,
            "payload": {"version_id": reg.model.id},
        }
    ]


def test_a_version_is_read_by_its_version_id(registry) -> None:
    from shared.registry.errors import ModelNotFoundError

    reg = registry.upload("iris", io.BytesIO(b"onnx bytes"), max_bytes=10_000)
    record, tensors = registry.get(reg.model.id)
    assert (record.name, record.version, tensors) == ("iris", 1, [])  # not ingested yet
    with pytest.raises(ModelNotFoundError) as exc:
        registry.get("iris")  # a model's name is no version's id
    assert exc.value.field == "version_id"


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
    assert registry.versions.hash_pinned(first.model.blob_name).sha256 == first.model.sha256
    assert [m.version for m in repos[1].list(name="iris")] == [2, 1]


def test_nested_names_are_no_model_and_are_refused_before_any_read(registry) -> None:
    registry.uploads.client("team/iris.onnx").upload_blob(b"x")  # the trigger path matches it
    with pytest.raises(InvalidNameError, match="top-level"):
        registry.register_blob("team/iris.onnx")
    with pytest.raises(InvalidNameError):
        registry.upload("../up", io.BytesIO(b"x"), max_bytes=10)


def test_the_registry_writes_nothing_where_the_trigger_fires_but_the_published_name(
    registry,
) -> None:
    """Versions and staging live in their own containers: the trigger's container holds
    only `<name>.onnx`, so registering never makes the trigger fire on its own writes."""
    reg = registry.upload("iris", io.BytesIO(b"v1 bytes"), max_bytes=100)
    registry.upload("iris", io.BytesIO(b"v2 bytes"), max_bytes=100)
    assert _names(registry.uploads) == ["iris.onnx"]
    assert len(_names(registry.versions)) == 2
    assert _names(registry.staging) == []  # no staging blob left behind
    published = registry.uploads.hash_pinned("iris.onnx")
    assert published.size == len(b"v2 bytes")
    assert reg.model.metadata["uploaded_as"] == "iris.onnx"
    assert registry.register_blob("iris.onnx").created is False


def test_upload_over_the_limit_leaves_nothing(registry, repos) -> None:
    from shared.storage.blob_store import UploadTooLargeError

    with pytest.raises(UploadTooLargeError):
        registry.upload("big", io.BytesIO(b"x" * 5000), max_bytes=1000)
    assert _names(registry.staging) == [] and _names(registry.uploads) == []
    assert repos[1].list(name="big") == []


def test_an_oversized_blob_fails_from_its_properties_without_a_read(registry, repos) -> None:
    """The size comes from the blob's properties: the blob is never hashed, no job is
    queued, and the model says why. A second refusal updates the same row."""
    registry.uploads.client("huge.onnx").upload_blob(b"x" * (LIMIT + 1))
    reg = registry.register_blob("huge.onnx")
    assert reg.job is None and not reg.created
    assert reg.model.status == "failed" and reg.model.sha256 is None
    assert f"over the limit of {LIMIT} (MAX_UPLOAD_BYTES)" in reg.model.error
    registry.uploads.client("huge.onnx").upload_blob(b"y" * (LIMIT + 7), overwrite=True)
    again = registry.register_blob("huge.onnx")
    assert again.model.id == reg.model.id and again.model.size_bytes == LIMIT + 7
    assert [m.status for m in repos[1].list(name="huge")] == ["failed"]
    assert _names(registry.versions) == []


def test_staging_blobs_left_by_dead_uploads_are_swept(registry) -> None:
    from datetime import timedelta

    store = registry.staging
    stray = "b" * 32 + ".onnx"
    store.upload(stray, io.BytesIO(b"half an upload"))
    assert store.sweep(timedelta(hours=1)) == 0  # too young: maybe still running
    assert store.exists(stray)
    assert store.sweep(timedelta(0)) == 1
    assert not store.exists(stray)


def test_a_blob_overwritten_while_it_registers_is_skipped_not_failed(registry, repos) -> None:
    """Two uploads in quick succession: the first event's hash and copy are pinned to the
    version it read, so once that is overwritten the event has nothing left to register.
    It says so (a conflict the trigger logs and drops, never a failed invocation); the
    new version registers on its own event."""
    from shared.registry.service import BlobChangedError

    uploads, versions = registry.uploads, registry.versions

    class OverwrittenBeforeTheCopy(type(versions)):
        def archive(self, source, model_name):
            uploads.client(source.name).upload_blob(b"second version", overwrite=True)
            return super().archive(source, model_name)

    registry.versions = OverwrittenBeforeTheCopy(versions.service, versions.container)
    uploads.client("race.onnx").upload_blob(b"first version")
    with pytest.raises(BlobChangedError, match="race.onnx changed or was deleted"):
        registry.register_blob("race.onnx")
    assert repos[1].list(name="race") == []
    registry.versions = versions
    second = registry.register_blob("race.onnx")
    assert second.created and second.model.size_bytes == len(b"second version")
    uploads.delete("race.onnx")
    with pytest.raises(BlobChangedError):
        registry.register_blob("race.onnx")  # deleted before its event was handled
