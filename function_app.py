"""Composition root: the FunctionApp and one Blueprint per area.

Keep imports here light and safe: an import error in this file is swallowed by the
Python worker and every route 404s ("0 functions found"). Heavy modules (onnxruntime,
numpy kernels, storage clients) are imported inside the functions that need them.
"""

import azure.functions as func

from shared.api import embeddings, health, openapi, search, vectors

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (health.bp, vectors.bp, embeddings.bp, search.bp, openapi.bp):
    app.register_functions(blueprint)
