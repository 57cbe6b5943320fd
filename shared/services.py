"""The app's services, built once per process and reused (ports run out under load
otherwise): the composition of storage, SQL and the services above them.

Everything is lazy: importing this module touches no network, database or disk, so
`function_app.py` imports stay light and a broken setting shows up as a clear error
on the route that needs it, not as "0 functions found".
"""

from __future__ import annotations

import threading
from functools import cache
from typing import TYPE_CHECKING

from shared.config import ROOT, get_settings

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueServiceClient

    from shared.db.connection import Database

_lock = threading.Lock()


def _vector_sql_functions(conn: object) -> None:
    from shared.vectors import sql_functions

    sql_functions.register(conn)  # type: ignore[arg-type]


@cache
def database() -> Database:
    """The app's database with its schema migrated (once per process)."""
    from shared.db.connection import open_database
    from shared.db.migrate import apply_migrations

    with _lock:
        db = open_database(
            get_settings().sql_connection, base_dir=ROOT, on_connect=[_vector_sql_functions]
        )
        apply_migrations(db)
        return db


@cache
def blob_service() -> BlobServiceClient:
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(get_settings().storage_connection)


@cache
def queue_service() -> QueueServiceClient:
    from azure.storage.queue import QueueServiceClient

    return QueueServiceClient.from_connection_string(get_settings().storage_connection)


@cache
def embedding_store():
    """Embedding writes/reads with the configured limits."""
    from shared.db.repos.embeddings import EmbeddingRepository
    from shared.search.store import EmbeddingStore, Limits

    s = get_settings()
    return EmbeddingStore(
        EmbeddingRepository(database()), Limits(s.max_vector_dim, s.max_batch_rows)
    )


@cache
def search_service():
    """Exact search over in-memory matrices kept coherent with SQL."""
    from shared.db.repos.embeddings import EmbeddingRepository
    from shared.search.index_cache import IndexCache
    from shared.search.service import SearchService

    s = get_settings()
    return SearchService(
        IndexCache(EmbeddingRepository(database()), s.search_cache_bytes),
        max_dim=s.max_vector_dim,
        max_queries=1024,
    )


@cache
def model_store():
    from shared.storage.blob_store import BlobModelStore

    return BlobModelStore(blob_service(), get_settings().models_container)


@cache
def ingest_store():
    from shared.storage.blob_store import BlobModelStore

    return BlobModelStore(blob_service(), get_settings().ingest_container)


@cache
def job_submitter():
    from shared.db.repos.jobs import JobRepository
    from shared.jobs.submit import JobQueue, JobSubmitter

    return JobSubmitter(
        JobRepository(database()), JobQueue(queue_service(), get_settings().ingestion_queue)
    )


@cache
def model_registry():
    from shared.db.repos.models import ModelRepository
    from shared.models.registry import ModelRegistry

    return ModelRegistry(ModelRepository(database()), model_store(), job_submitter())


@cache
def model_files():
    """The bounded local model cache, filled from Blob Storage and sha256-verified."""
    from shared.models.file_cache import ModelFileCache

    s = get_settings()
    return ModelFileCache(s.data_dir / "model-cache", s.model_cache_bytes)


def fetch_model_file(record):
    """A local path to a registered model's bytes (downloaded once, then cached)."""
    store = model_store()
    return model_files().path_for(
        record.sha256, lambda dest: store.download_to(record.blob_name, dest)
    )


@cache
def sessions():
    """The process's one cache of warmed onnxruntime sessions: inference and text
    embedding both load through it, so MAX_SESSIONS bounds every loaded model."""
    from shared.models.sessions import SessionCache

    return SessionCache(get_settings().max_sessions)


@cache
def text_embedders():
    from shared.db.repos.models import ModelRepository
    from shared.models.text_models import TextModels

    s = get_settings()
    return TextModels(
        ModelRepository(database()),
        fetch_model_file,
        model_store(),
        s.data_dir / "tokenizers",
        sessions(),
    )


@cache
def job_runner():
    from shared.db.repos.jobs import JobRepository
    from shared.db.repos.models import ModelRepository
    from shared.jobs.handlers import EmbeddingsIngestion, ModelIngestion, TextEmbeddingJob
    from shared.jobs.kinds import JobKind
    from shared.jobs.runner import JobRunner

    store = embedding_store()
    return JobRunner(
        JobRepository(database()),
        {
            JobKind.MODEL: ModelIngestion(
                ModelRepository(database()), fetch_model_file, get_settings().max_upload_bytes
            ),
            JobKind.EMBEDDINGS: EmbeddingsIngestion(
                store, ingest_store(), max_ids_bytes=256 * 1024**2
            ),
            JobKind.EMBED_TEXT: TextEmbeddingJob(store, text_embedders().get),
        },
    )


@cache
def inference():
    """Open Inference Protocol service: cached files, warmed sessions, inference log."""
    from shared.db.repos.inference_log import InferenceLogRepository
    from shared.db.repos.models import ModelRepository
    from shared.models.inference import InferenceService
    from shared.vectors.pool import default_pool

    store = model_store()
    return InferenceService(
        ModelRepository(database()),
        InferenceLogRepository(database()),
        model_files(),
        sessions(),
        lambda record, dest: store.download_to(record.blob_name, dest),
        default_pool(),
    )
