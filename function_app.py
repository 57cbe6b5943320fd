"""Composition root: the FunctionApp and one Blueprint per area.

Keep imports here light and safe: an import error in this file is swallowed by the
Python worker and every route 404s ("0 functions found"). Heavy modules (onnxruntime,
numpy kernels, storage clients) are imported inside the functions that need them.
"""

import azure.functions as func

from shared.api import (
    analytics,
    database,
    embeddings,
    health,
    inference,
    jobs,
    models,
    monitoring,
    openapi,
    search,
    text_embeddings,
    vectors,
)
from shared.monitoring.gauges import register_once as register_resource_gauges

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for area in (
    health,
    vectors,
    embeddings,
    text_embeddings,
    search,
    models,
    jobs,
    inference,
    database,
    monitoring,
    analytics,
    openapi,
):
    app.register_functions(area.bp)

# Resource gauges (CPU, memory, GPU): once per process, through the OpenTelemetry API.
# Never raises: without psutil or NVML the gauges are simply absent (one log line).
register_resource_gauges()
