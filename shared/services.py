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
    from azure.core.credentials import TokenCredential
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueServiceClient

    from shared.db.connection import Database
    from shared.storage.accounts import StorageAccount

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
        settings = get_settings()
        db = open_database(
            settings.require("sql_connection"),
            base_dir=ROOT,
            on_connect=[_vector_sql_functions],
            busy_timeout_ms=settings.sql_busy_timeout_ms,
        )
        apply_migrations(db)
        return db


@cache
def storage_account() -> StorageAccount:
    """The AzureWebJobsStorage account: connection string or identity-based settings."""
    from shared.storage.accounts import resolve_account

    return resolve_account()


@cache
def storage_credential() -> TokenCredential | None:
    """One token credential per process for identity-based storage (it caches tokens)."""
    from shared.storage.accounts import token_credential

    return token_credential(storage_account())


@cache
def blob_service() -> BlobServiceClient:
    """Blob Storage with short timeouts and one quick retry: an account that does not
    answer fails the request with a 503 well before the front end's 230 s cut."""
    from shared.storage.accounts import REQUEST_CLIENT_OPTIONS, blob_service_client

    account, credential = storage_account(), storage_credential()
    return blob_service_client(account, credential=credential, **REQUEST_CLIENT_OPTIONS)


@cache
def queue_service() -> QueueServiceClient:
    """Queue Storage, with the same short timeouts as `blob_service`."""
    from shared.storage.accounts import REQUEST_CLIENT_OPTIONS, queue_service_client

    account, credential = storage_account(), storage_credential()
    return queue_service_client(account, credential=credential, **REQUEST_CLIENT_OPTIONS)


# Readiness probes must answer fast: no SDK retry loop, short socket timeouts.
PROBE_CLIENT_OPTIONS = {"retry_total": 0, "connection_timeout": 1, "read_timeout": 1}


@cache
def _probe_blob_service() -> BlobServiceClient:
    from shared.storage.accounts import blob_service_client

    account, credential = storage_account(), storage_credential()
    return blob_service_client(account, credential=credential, **PROBE_CLIENT_OPTIONS)


@cache
def _probe_queue_service() -> QueueServiceClient:
    from shared.storage.accounts import queue_service_client

    account, credential = storage_account(), storage_credential()
    return queue_service_client(account, credential=credential, **PROBE_CLIENT_OPTIONS)


@cache
def readiness():
    """One prober per process, so a part that hangs is not probed again while it hangs."""
    from shared.health import Readiness, storage_probes

    probes = storage_probes(database, _probe_blob_service, _probe_queue_service)
    return Readiness(probes, timeout=1.5)


@cache
def embedding_store():
    """Embedding writes/reads with the configured limits."""
    from shared.db.repos.embeddings import EmbeddingRepository
    from shared.search.store import EmbeddingStore, Limits

    s = get_settings()
    return EmbeddingStore(
        EmbeddingRepository(database()),
        Limits(s.max_vector_dim, s.max_batch_rows),
        forget_snapshot=snapshot_store().forget,
    )


@cache
def snapshot_store():
    """Search snapshots in Blob Storage (the client is made when first needed)."""
    from shared.search.snapshots import SnapshotStore

    return SnapshotStore(blob_service, get_settings().search_snapshots_container)


@cache
def search_service():
    """Exact search over in-memory matrices kept coherent with SQL."""
    from shared.db.repos.embeddings import EmbeddingRepository
    from shared.search.index_cache import IndexCache
    from shared.search.service import SearchService

    s = get_settings()
    cache = IndexCache(
        EmbeddingRepository(database()),
        s.search_cache_bytes,
        rows_dir=s.data_dir / "search-rows",
        compress_from=s.search_compress_from_rows,
        snapshots=snapshot_store(),
        settle_seconds=s.search_snapshot_settle_seconds,
    )
    return SearchService(
        cache,
        max_dim=s.max_vector_dim,
        max_queries=1024,
    )


@cache
def model_store():
    """The container users upload to (the blob trigger watches it)."""
    from shared.storage.blob_store import BlobModelStore

    return BlobModelStore(blob_service(), get_settings().models_container)


@cache
def version_store():
    """Registered versions' bytes, immutable, where no trigger fires."""
    from shared.storage.blob_store import BlobModelStore

    return BlobModelStore(blob_service(), get_settings().model_versions_container)


@cache
def upload_store():
    """API uploads while they are registered, where no trigger fires."""
    from shared.storage.blob_store import BlobModelStore

    return BlobModelStore(blob_service(), get_settings().model_uploads_container)


@cache
def ingest_store():
    from shared.storage.blob_store import BlobModelStore

    return BlobModelStore(blob_service(), get_settings().ingest_container)


@cache
def job_submitter():
    from shared.db.repos.jobs import JobRepository
    from shared.jobs.submit import JobQueue, JobSubmitter

    return JobSubmitter(
        JobRepository(database()),
        JobQueue(queue_service(), get_settings().ingestion_queue),
        job_payloads(),
    )


@cache
def job_payloads():
    """Payloads too big for a queue message, kept in the ingest container."""
    from shared.jobs.payloads import PayloadStore

    return PayloadStore(ingest_store())


@cache
def analytics():
    """Usage, per-model and storage analytics over the app's database (numpy inside)."""
    from shared.analytics.service import AnalyticsService

    return AnalyticsService(database())


@cache
def model_registry():
    from shared.db.repos.models import ModelRepository
    from shared.models.registry import ModelRegistry

    return ModelRegistry(
        ModelRepository(database()),
        uploads=model_store(),
        versions=version_store(),
        staging=upload_store(),
        submitter=job_submitter(),
        max_bytes=get_settings().max_upload_bytes,
    )


@cache
def model_files():
    """The bounded local model cache, filled from Blob Storage and sha256-verified."""
    from shared.models.file_cache import ModelFileCache

    s = get_settings()
    return ModelFileCache(s.data_dir / "model-cache", s.model_cache_bytes)


@cache
def model_downloads():
    from shared.db.repos.models import ModelRepository
    from shared.models.downloads import ModelDownloads

    return ModelDownloads(version_store(), ModelRepository(database()))


def fetch_model_file(record):
    """A local path to a registered model's bytes (downloaded once, then cached)."""
    download = model_downloads().download
    return model_files().path_for(record.sha256, lambda dest: download(record, dest))


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
        job_payloads(),
        queue_name=get_settings().ingestion_queue,
    )


@cache
def inference():
    """Open Inference Protocol service: cached files, warmed sessions, inference log."""
    from shared.db.repos.inference_log import InferenceLogRepository
    from shared.db.repos.models import ModelRepository
    from shared.models.inference import InferenceService
    from shared.vectors.pool import default_pool

    return InferenceService(
        ModelRepository(database()),
        InferenceLogRepository(database()),
        model_files(),
        sessions(),
        model_downloads().download,
        default_pool(),
    )
