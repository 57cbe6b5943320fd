"""Inference and text embedding load their sessions through one SessionCache, so one
budget (MAX_SESSIONS) bounds every model loaded in the process. Real onnxruntime on real
files (sklearn models and the all-MiniLM-L6-v2 int8 ONNX), SQLite and Azurite."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from shared.inference.embedder import TextEmbedder
from shared.inference.file_cache import ModelFileCache
from shared.inference.repository import InferenceLogRepository
from shared.inference.service import InferenceService
from shared.inference.sessions import SessionCache
from shared.inference.text_models import TextModels
from shared.registry.repository import ModelRecord, ModelRepository
from shared.storage.blob_store import BlobModelStore
from shared.vectors.pool import BufferPool
from tests.support.db import migrated
from tests.support.models import write_classifier, write_regressor
from tests.support.pretrained import find_minilm

MINILM = find_minilm()
pytestmark = pytest.mark.skipif(MINILM is None, reason="MiniLM packages are not installed")


@dataclass
class Parts:
    sessions: SessionCache
    inference: InferenceService
    texts: TextModels
    ids: dict[str, str]  # model name -> model id (the session cache key)


def _register(models: ModelRepository, store: BlobModelStore, name: str, path: Path) -> str:
    with path.open("rb") as f:
        blob = store.upload(f"{name}.onnx", f)
    record, _ = models.register(
        name, sha256=blob.sha256, size_bytes=blob.size, blob_uri=blob.uri, blob_name=blob.name
    )
    models.set_status(record.id, "ready")
    return record.id


def _parts(tmp_path: Path, store: BlobModelStore, max_sessions: int) -> Iterator[Parts]:
    assert MINILM is not None
    db = migrated(tmp_path / "models.db")
    models = ModelRepository(db)
    ids = {
        "iris": _register(models, store, "iris", write_classifier(tmp_path)),
        "reg": _register(models, store, "reg", write_regressor(tmp_path)),
        "minilm": _register(models, store, "minilm", MINILM[0]),
    }
    with MINILM[1].open("rb") as f:
        store.upload("minilm.tokenizer.json", f)
    files = ModelFileCache(tmp_path / "cache", 256 * 1024 * 1024)

    def download(record: ModelRecord, dest: Path) -> None:
        store.download_to(record.blob_name or "", dest)

    def fetch(record: ModelRecord) -> Path:
        return files.path_for(record.sha256 or "", lambda dest: download(record, dest))

    sessions = SessionCache(max_sessions)
    inference = InferenceService(
        models, InferenceLogRepository(db), files, sessions, download, BufferPool()
    )
    texts = TextModels(models, fetch, store, tmp_path / "tokenizers", sessions)
    try:
        yield Parts(sessions, inference, texts, ids)
    finally:
        db.close()


@pytest.fixture
def two(tmp_path: Path, container: BlobModelStore) -> Iterator[Parts]:
    yield from _parts(tmp_path, container, max_sessions=2)


def test_inference_and_text_models_count_against_one_budget(two: Parts) -> None:
    cache, ids = two.sessions, two.ids
    two.inference.ensure_loaded("iris")
    vectors = two.texts.get("minilm").embed(["a text model shares the budget"])
    assert vectors.shape == (1, 384)
    assert cache.keys() == [ids["iris"], ids["minilm"]]

    two.inference.ensure_loaded("reg")  # a third model: the least recently used goes
    assert cache.keys() == [ids["minilm"], ids["reg"]] and len(cache) == 2
    assert cache.loads == 3

    two.texts.get("minilm").embed(["still loaded: a hit"])
    assert cache.loads == 3
    two.inference.ensure_loaded("iris")  # now the regressor is the oldest
    assert cache.keys() == [ids["minilm"], ids["iris"]]
    two.inference.ensure_loaded("reg")
    assert cache.keys() == [ids["iris"], ids["reg"]]  # the text model was evicted too

    again = two.texts.get("minilm").embed(["loaded again on demand"])
    assert again.shape == (1, 384) and cache.loads == 6
    assert len(cache) == 2


def test_a_model_used_both_ways_loads_one_session(two: Parts) -> None:
    two.inference.ensure_loaded("minilm")
    embedder = two.texts.get("minilm")
    assert two.sessions.loads == 1 and len(two.sessions) == 1
    loaded = two.sessions.lookup(two.ids["minilm"])
    assert loaded is not None and embedder._session is loaded.session


def test_the_cached_session_embeds_as_a_standalone_embedder(two: Parts) -> None:
    assert MINILM is not None
    texts = ["A man is playing a guitar.", "short", "The central bank raised rates again."]
    shared = two.texts.get("minilm").embed(texts)
    alone = TextEmbedder(*MINILM).embed(texts)
    np.testing.assert_allclose(shared, alone, atol=1e-5)
    assert np.allclose(np.linalg.norm(shared, axis=1), 1.0, atol=1e-5)
