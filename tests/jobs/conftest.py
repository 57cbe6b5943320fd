"""Real parts for job tests: SQLite, and Azurite containers for batch files."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from shared.db.connection import open_database
from shared.db.migrate import apply_migrations
from shared.embeddings.repository import EmbeddingRepository
from shared.embeddings.service import EmbeddingStore, Limits
from shared.jobs.repository import JobRepository
from shared.jobs.submit import JobQueue
from shared.registry.repository import ModelRepository
from shared.storage.blob_store import BlobModelStore


@pytest.fixture
def db(tmp_path: Path):
    database = open_database(f"sqlite:///{tmp_path / 'jobs.db'}")
    apply_migrations(database)
    yield database
    database.close()


@pytest.fixture
def repos(db):
    return JobRepository(db), ModelRepository(db), EmbeddingRepository(db)


@pytest.fixture
def store(repos) -> EmbeddingStore:
    return EmbeddingStore(repos[2], Limits(max_dim=4096, max_rows=100_000))


@pytest.fixture
def blob_service(storage_connection: str) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(storage_connection)


@pytest.fixture
def container(blob_service: BlobServiceClient) -> BlobModelStore:
    s = BlobModelStore(blob_service, f"t-{uuid.uuid4().hex[:12]}")
    s.ensure_container()
    return s


@pytest.fixture
def queue(storage_connection: str) -> JobQueue:
    """A fresh ingestion queue on Azurite."""
    q = JobQueue(
        QueueServiceClient.from_connection_string(storage_connection), f"q-{uuid.uuid4().hex[:10]}"
    )
    q.ensure()
    return q
