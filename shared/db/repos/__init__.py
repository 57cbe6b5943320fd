"""Repositories: one per table family, all SQL parameterised, no azure.functions."""

from shared.db.repos.embeddings import EmbeddingRepository
from shared.db.repos.inference_log import InferenceLogRepository
from shared.db.repos.jobs import JobRepository
from shared.db.repos.models import ModelRepository

__all__ = [
    "EmbeddingRepository",
    "InferenceLogRepository",
    "JobRepository",
    "ModelRepository",
]
