"""The job machinery of this process, built once: the submitter, the runner and the
ingest container that holds payloads too big for a queue message."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from shared.settings import get_settings

if TYPE_CHECKING:
    from shared.jobs.payloads import PayloadStore
    from shared.jobs.runner import JobRunner
    from shared.jobs.submit import JobSubmitter
    from shared.storage.blob_store import BlobModelStore


def ingest_container() -> BlobModelStore:
    """The ingest container: job payloads and the blobs embedding jobs read."""
    from shared.storage.clients import container

    return container(get_settings().ingest_container)


@cache
def job_payloads() -> PayloadStore:
    """Payloads too big for a queue message, kept in the ingest container."""
    from shared.jobs.payloads import PayloadStore

    return PayloadStore(ingest_container())


@cache
def job_submitter() -> JobSubmitter:
    from shared.db.app import database
    from shared.jobs.repository import JobRepository
    from shared.jobs.submit import JobQueue, JobSubmitter
    from shared.storage.clients import queue_service

    return JobSubmitter(
        JobRepository(database()),
        JobQueue(queue_service(), get_settings().ingestion_queue),
        job_payloads(),
    )


@cache
def job_runner() -> JobRunner:
    """Runs each kind with the handler its feature registered (``shared.jobs.handlers``)."""
    from shared.db.app import database
    from shared.errors import ConfigurationError
    from shared.jobs.handlers import Handlers, registered
    from shared.jobs.kinds import KINDS
    from shared.jobs.repository import JobRepository
    from shared.jobs.runner import JobRunner

    missing = sorted(set(KINDS) - registered())
    if missing:
        raise ConfigurationError(f"no handler registered for job kinds {missing}")
    return JobRunner(
        JobRepository(database()),
        Handlers(),
        job_payloads(),
        queue_name=get_settings().ingestion_queue,
        max_dequeue_count=max_dequeue_count(),
    )


def max_dequeue_count() -> int:
    """The attempt after which the host moves a message to the poison queue: host.json's
    queues.maxDequeueCount, or its app-setting override, as the host itself reads it."""
    import json
    import os

    from shared.settings import ROOT

    override = os.environ.get(
        "AzureFunctionsJobHost__extensions__queues__maxDequeueCount"  # noqa: SIM112 - Azure's name
    )
    try:
        if override:
            return int(override)
        host = json.loads((ROOT / "host.json").read_text())
        return int(host.get("extensions", {}).get("queues", {}).get("maxDequeueCount", 5))
    except (OSError, ValueError):
        return 5
