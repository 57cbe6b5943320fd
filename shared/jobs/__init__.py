"""Ingestion jobs on Azure Queue Storage: message schema, submission, the runner."""
