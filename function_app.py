"""Composition root: the FunctionApp, one Blueprint per feature, and the wiring between
features that no feature may do itself (a lower feature never imports a higher one).

Keep imports here light and safe: an import error in this file is swallowed by the
Python worker and every route 404s ("0 functions found"). Heavy modules (onnxruntime,
numpy kernels, storage clients) are imported inside the functions that need them.
"""

import azure.functions as func

from shared import process_exit
from shared.analytics import routes as analytics
from shared.db import app as app_database
from shared.db import routes as database
from shared.embeddings import routes as embeddings
from shared.embeddings.openai import routes as openai_embeddings
from shared.embeddings.shapes import EmbeddingsPayload, EmbedTextPayload
from shared.health import routes as health
from shared.http import openapi
from shared.inference.protocol import routes as inference
from shared.jobs import handlers as job_handlers
from shared.jobs import routes as jobs
from shared.jobs.kinds import JobKind
from shared.monitoring import routes as monitoring
from shared.monitoring.gauges import register_once as register_resource_gauges
from shared.registry import routes as models
from shared.registry.shapes import ModelPayload
from shared.rerank import routes as rerank
from shared.search import routes as search
from shared.search import text_queries as search_text_queries
from shared.vectors import routes as vectors

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for feature in (
    health,
    vectors,
    embeddings,
    openai_embeddings,
    rerank,
    search,
    models,
    jobs,
    inference,
    database,
    monitoring,
    analytics,
    openapi,
):
    app.register_functions(feature.bp)


def _model_ingestion():
    from shared.inference.ingestion import model_ingestion

    return model_ingestion()


def _embeddings_ingestion():
    from shared.embeddings.ingestion import embeddings_ingestion

    return embeddings_ingestion()


def _text_embedding_job():
    from shared.embeddings.ingestion import text_embedding_job

    return text_embedding_job()


# Registration submits model jobs; inference makes the model servable. Embedding jobs
# store vectors. The job machinery runs whichever handler a kind has here.
job_handlers.register(JobKind.MODEL, ModelPayload, _model_ingestion)
job_handlers.register(JobKind.EMBEDDINGS, EmbeddingsPayload, _embeddings_ingestion)
job_handlers.register(JobKind.EMBED_TEXT, EmbedTextPayload, _text_embedding_job)


def _embed_search_text(model: str, text: str) -> object:
    from shared.embeddings.service import text_embeddings

    return text_embeddings().embed(model, [text], truncate=False, field="text").vectors[0]


# POST /api/search by "text": the embeddings feature embeds it (search may not import it).
search_text_queries.use(_embed_search_text)


def _vector_sql_functions(connection: object) -> None:
    from shared.vectors import sql_functions

    sql_functions.register(connection)  # type: ignore[arg-type]


# The scalar vector functions in SQL (vector_dot_product ...) on every SQLite connection.
app_database.on_connect(_vector_sql_functions)

# A SIGTERM (how hosts stop a worker) flushes what is queued for exit, as a normal
# exit does: the inference log's rows written off the callers' time.
process_exit.install_sigterm()

# Resource gauges (CPU, memory, GPU): once per process, through the OpenTelemetry API.
# Never raises: without psutil or NVML the gauges are simply absent (one log line).
register_resource_gauges()
