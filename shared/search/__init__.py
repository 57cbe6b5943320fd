"""Exact vector search over embeddings kept in SQL, scanned from memory."""
