"""Blob Storage for model files: names checked, bytes streamed, hashes computed on the way."""
