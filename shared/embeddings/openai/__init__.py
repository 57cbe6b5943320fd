"""The OpenAI embeddings API (``/api/v1/embeddings``, ``/api/v1/models``) over the
text-embedding service, for the openai SDK and the clients built on it."""
