"""RerankService on real parts, without the host: models registered in a migrated SQLite
file, tokenizers in an Azurite container, real onnxruntime sessions on cross-encoders
built here, the inference log. Scores are checked against the tokenizers library's own
pair encoding run on a bare onnxruntime session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from shared.batching import BatchLimits
from shared.db.connection import Database
from shared.inference.embedder import DEFAULT_MAX_TOKENS, TokenLimit
from shared.inference.inspect import inspect_model
from shared.inference.repository import InferenceLogRepository
from shared.inference.sessions import SessionCache
from shared.registry.errors import ModelNotFoundError, ModelNotReadyError
from shared.registry.repository import ModelRecord, ModelRepository
from shared.rerank.models import CrossEncoders
from shared.rerank.pairs import RerankInputError
from shared.rerank.reranker import NotACrossEncoderError
from shared.rerank.service import RerankService
from shared.storage.blob_store import BlobModelStore
from tests.rerank.crossencoders import (
    bare_logits,
    expected_scores,
    write_cross_encoder,
    write_tokenizer,
)
from tests.support.concurrent import together
from tests.support.models import sha256_of, write_classifier

QUERY = "cat on the mat"
DOCUMENTS = [
    "the cat sleeps on the mat",
    "money interest rates rise",
    "a dog runs in the park",
    "the river bank",
    "cat",
    "fish water boat river sun rain cloud green tree bird",
]


@dataclass
class Rig:
    models: ModelRepository
    store: BlobModelStore
    log: InferenceLogRepository
    encoders: CrossEncoders
    files: dict[str, Path]
    db: Database

    def register(
        self,
        name: str,
        model: Path,
        tokenizer: Path | None,
        options: dict[str, str] | None = None,
    ) -> ModelRecord:
        """As ingestion leaves a model (ready, with its inspected metadata and
        initializers), and its tokenizer uploaded beside it, as a user does."""
        if tokenizer is not None:
            self.store.client(f"{name}.tokenizer.json").upload_blob(
                tokenizer.read_bytes(), overwrite=True
            )
        sha = sha256_of(model)
        self.files[sha] = model
        record, _ = self.models.register(
            name,
            sha256=sha,
            size_bytes=model.stat().st_size,
            blob_uri=f"local://{name}/{sha}.onnx",
            blob_name=f"{name}/{sha}.onnx",
        )
        info = inspect_model(model)
        self.models.replace_tensors(record.id, info.initializers)
        metadata = {**(options or {}), **info.to_metadata()}
        self.models.set_status(record.id, "ready", metadata=metadata)
        found = self.models.get(record.id)
        assert found is not None
        return found

    def service(self, batching: BatchLimits | None = None) -> RerankService:
        return RerankService(self.encoders, self.log, batching)


@pytest.fixture
def rig(db: Database, container: BlobModelStore, tmp_path: Path) -> Rig:
    models = ModelRepository(db)
    files: dict[str, Path] = {}
    encoders = CrossEncoders(
        models, lambda r: files[r.sha256], container, tmp_path / "tokenizers", SessionCache(4)
    )
    return Rig(models, container, InferenceLogRepository(db), encoders, files, db)


@pytest.fixture
def tokenizer(tmp_path: Path) -> Path:
    return write_tokenizer(tmp_path / "tokenizer.json")


@pytest.mark.parametrize(
    ("logits", "flat", "token_type_ids"),
    [(1, False, True), (2, False, True), (1, True, True), (2, False, False)],
    ids=["one-logit", "two-logits", "one-logit-flat", "two-logits-no-segments"],
)
def test_scores_equal_bare_onnxruntime_on_the_same_pairs(
    rig: Rig, tokenizer: Path, tmp_path: Path, logits: int, flat: bool, token_type_ids: bool
) -> None:
    model = write_cross_encoder(
        tmp_path / "ce.onnx", logits=logits, flat=flat, token_type_ids=token_type_ids
    )
    rig.register("ce", model, tokenizer)
    ranking = rig.service().rerank("ce", QUERY, DOCUMENTS)

    want = expected_scores(bare_logits(model, tokenizer, QUERY, DOCUMENTS, DEFAULT_MAX_TOKENS))
    assert np.abs(ranking.scores - want).max() <= 1e-5
    assert ((ranking.scores > 0) & (ranking.scores < 1)).all()
    assert len(set(np.round(want, 6))) == len(DOCUMENTS)  # distinct: the order is meaningful
    assert ranking.order == np.argsort(-want, kind="stable").tolist()
    assert ranking.model_version == 1 and ranking.limit == DEFAULT_MAX_TOKENS
    assert ranking.pairs.truncated() == []


def test_top_n_keeps_the_best_in_order(rig: Rig, tokenizer: Path, tmp_path: Path) -> None:
    rig.register("ce", write_cross_encoder(tmp_path / "ce.onnx"), tokenizer)
    service = rig.service()
    full = service.rerank("ce", QUERY, DOCUMENTS)
    top = service.rerank("ce", QUERY, DOCUMENTS, top_n=3)
    assert top.order == full.order[:3]
    scores = [full.scores[i] for i in full.order]
    assert scores == sorted(scores, reverse=True)
    assert service.rerank("ce", QUERY, DOCUMENTS, top_n=50).order == full.order


def test_a_long_document_is_cut_and_said_so_the_query_never(rig: Rig, tmp_path: Path) -> None:
    """The tokenizer file's truncation length is the limit: a pair of a 4-token query and
    a 30-token document keeps 16 - 4 - 3 (special tokens) = 9 tokens of the document."""
    tokenizer = write_tokenizer(tmp_path / "t16.json", max_length=16)
    model = write_cross_encoder(tmp_path / "ce.onnx")
    rig.register("ce", model, tokenizer)
    long_doc = " ".join(["fish water boat river sun rain"] * 5)  # 30 words, 30 tokens
    docs = ["the cat sleeps", long_doc]
    ranking = rig.service().rerank("ce", QUERY, docs)

    assert ranking.limit == 16
    assert ranking.pairs.truncated() == [(1, 30, 9)]
    assert ranking.pairs.query_tokens == 4
    assert [len(ids) for ids in ranking.pairs.ids] == [4 + 3 + 3, 16]
    want = expected_scores(bare_logits(model, tokenizer, QUERY, docs, 16))
    assert np.abs(ranking.scores - want).max() <= 1e-5
    # What was read of the long document: its first 9 words, scored like a short one.
    cut = rig.service().rerank("ce", QUERY, [" ".join(long_doc.split()[:9])])
    assert cut.pairs.truncated() == []
    assert abs(cut.scores[0] - ranking.scores[1]) <= 1e-6

    # A query that leaves room for one document token is served; one that leaves none is
    # refused naming the query: it is never cut.
    room_of_one = " ".join(["cat"] * 12)
    assert rig.service().rerank("ce", room_of_one, docs).pairs.kept_tokens == [1, 1]
    with pytest.raises(RerankInputError) as refused:
        rig.service().rerank("ce", " ".join(["cat"] * 13), docs)
    assert refused.value.field == "query"
    assert "13 tokens" in refused.value.message and "limit of 16" in refused.value.message


def test_max_tokens_per_doc_cuts_shorter_than_the_model(
    rig: Rig, tokenizer: Path, tmp_path: Path
) -> None:
    model = write_cross_encoder(tmp_path / "ce.onnx")
    rig.register("ce", model, tokenizer)
    ranking = rig.service().rerank("ce", QUERY, DOCUMENTS, max_tokens_per_doc=3)
    assert ranking.pairs.truncated() == [(0, 6, 3), (1, 4, 3), (2, 6, 3), (5, 10, 3)]
    cut = [" ".join(d.split()[:3]) for d in DOCUMENTS]
    want = expected_scores(bare_logits(model, tokenizer, QUERY, cut, DEFAULT_MAX_TOKENS))
    assert np.abs(ranking.scores - want).max() <= 1e-5


def test_the_limit_comes_from_the_registration_then_the_file_then_the_model(
    rig: Rig, tmp_path: Path
) -> None:
    """The text models' rule (``embedder.token_limit``), the position table aside: the
    next test has it."""
    tokenizer16 = write_tokenizer(tmp_path / "t16.json", max_length=16)
    # A fixed padding length in the file is the file's, not the model's: it is dropped.
    plain = write_tokenizer(tmp_path / "plain.json", pad_length=64)
    model = write_cross_encoder(tmp_path / "ce.onnx")
    long_doc = " ".join(["fish water boat river sun rain"] * 100)  # 600 tokens

    rig.register("by-option", model, tokenizer16, {"max_tokens": "12"})
    assert rig.service().rerank("by-option", QUERY, [long_doc]).pairs.kept_tokens == [5]

    rig.register("by-default", model, plain)
    ranking = rig.service().rerank("by-default", QUERY, [long_doc, "cat"])
    assert ranking.limit == DEFAULT_MAX_TOKENS
    assert ranking.pairs.truncated() == [(0, 600, DEFAULT_MAX_TOKENS - 4 - 3)]
    assert [len(ids) for ids in ranking.pairs.ids] == [DEFAULT_MAX_TOKENS, 4 + 3 + 1]

    # A model that declares a fixed sequence length is given exactly that many tokens.
    fixed = write_cross_encoder(tmp_path / "fixed.onnx", sequence=24)
    rig.register("fixed", fixed, plain)
    docs = [long_doc, "cat", "the dog"]
    ranking = rig.service().rerank("fixed", QUERY, docs)
    assert ranking.limit == 24 and ranking.pairs.truncated() == [(0, 600, 24 - 4 - 3)]
    want = expected_scores(bare_logits(fixed, plain, QUERY, docs, 24, pad_to=24))
    assert np.abs(ranking.scores - want).max() <= 1e-5


def test_a_position_table_smaller_than_the_limit_found_lowers_it(rig: Rig, tmp_path: Path) -> None:
    """A model whose position table has 20 rows fails on a longer pair: the limit is 20
    when nothing says a number (512 by default) or says a larger one (the registration),
    and a smaller number from the file stays."""
    plain = write_tokenizer(tmp_path / "plain.json")
    tokenizer16 = write_tokenizer(tmp_path / "t16.json", max_length=16)
    model = write_cross_encoder(tmp_path / "positions.onnx", positions=20)
    long_doc = " ".join(["fish water boat river sun rain"] * 100)  # 600 tokens
    docs = [long_doc, "cat", "the dog"]

    by_table = rig.register("by-table", model, plain)
    assert rig.encoders.reranker(by_table).limit == TokenLimit(20, "position_embeddings")
    ranking = rig.service().rerank("by-table", QUERY, docs)
    assert ranking.limit == 20 and ranking.pairs.truncated() == [(0, 600, 20 - 4 - 3)]
    want = expected_scores(bare_logits(model, plain, QUERY, docs, 20))
    assert np.abs(ranking.scores - want).max() <= 1e-5

    over = rig.register("registered-over", model, plain, {"max_tokens": "64"})
    assert rig.encoders.reranker(over).limit == TokenLimit(20, "position_embeddings")
    assert rig.service().rerank("registered-over", QUERY, docs).pairs.kept_tokens[0] == 13

    under = rig.register("file-under", model, tokenizer16)
    assert rig.encoders.reranker(under).limit == TokenLimit(16, "tokenizer")
    assert rig.service().rerank("file-under", QUERY, docs).pairs.kept_tokens[0] == 9


def test_concurrent_calls_run_as_one_batch_and_score_as_alone(
    rig: Rig, tokenizer: Path, tmp_path: Path
) -> None:
    rig.register("ce", write_cross_encoder(tmp_path / "ce.onnx", logits=2), tokenizer)
    calls = [
        ("cat on the mat", DOCUMENTS[:2]),
        ("river bank", DOCUMENTS[2:5]),
        ("a fast train", ["the train", "a boat on the water sun rain cloud"]),
        ("money", ["interest rates rise"]),
        ("green park tree", DOCUMENTS),
    ]
    alone = [rig.service().rerank("ce", q, d).scores for q, d in calls]

    pairs = sum(len(d) for _, d in calls)  # a batch of exactly that many pairs runs once full
    service = rig.service(BatchLimits(pairs, 5000, 64))
    got = together(len(calls), lambda i: service.rerank("ce", *calls[i]))
    for ranking, want in zip(got, alone, strict=True):
        assert not isinstance(ranking, Exception), ranking
        assert np.abs(ranking.scores - want).max() <= 1e-6
    assert 0 < service.batchers.batches < len(calls)


def test_every_call_writes_one_inference_log_row(rig: Rig, tokenizer: Path, tmp_path: Path) -> None:
    record = rig.register("ce", write_cross_encoder(tmp_path / "ce.onnx"), tokenizer)
    service = rig.service()
    service.rerank("ce", QUERY, DOCUMENTS)
    service.rerank("ce", QUERY, DOCUMENTS[:2])
    with pytest.raises(ModelNotFoundError) as missing:
        service.rerank("nope", QUERY, DOCUMENTS)
    assert missing.value.field == "model"
    with pytest.raises(RerankInputError):
        service.rerank("ce", " ".join(["cat"] * 600), DOCUMENTS)
    assert rig.log.flush()
    rows = rig.db.query(
        "SELECT version_id, model_name, model_version, rows, outcome, error, latency_ms "
        "FROM inference_log ORDER BY id"
    )
    got = [
        (r["version_id"], r["model_name"], r["model_version"], r["rows"], r["outcome"])
        for r in rows
    ]
    assert got == [
        (record.id, "ce", 1, 6, "succeeded"),
        (record.id, "ce", 1, 2, "succeeded"),
        (None, "nope", None, 0, "failed"),
        (record.id, "ce", 1, 0, "failed"),
    ]
    assert "not registered" in rows[2]["error"] and "query" in rows[3]["error"]
    assert all(r["latency_ms"] > 0 for r in rows)


def test_models_that_cannot_rerank_say_why(rig: Rig, tokenizer: Path, tmp_path: Path) -> None:
    rig.register("no-tokenizer", write_cross_encoder(tmp_path / "ce.onnx"), None)
    with pytest.raises(ModelNotReadyError) as not_ready:
        rig.service().rerank("no-tokenizer", QUERY, DOCUMENTS)
    assert not_ready.value.field == "model"
    assert "upload no-tokenizer.tokenizer.json" in not_ready.value.message

    rig.register("iris", write_classifier(tmp_path), tokenizer)
    with pytest.raises(NotACrossEncoderError) as wrong:
        rig.service().rerank("iris", QUERY, DOCUMENTS)
    assert wrong.value.field == "model" and "not a cross-encoder" in wrong.value.message

    three = write_cross_encoder(tmp_path / "three.onnx", logits=3)
    rig.register("three", three, tokenizer)
    with pytest.raises(NotACrossEncoderError) as wide:
        rig.service().rerank("three", QUERY, DOCUMENTS)
    assert "output 'logits' has shape ['b', 3]" in wide.value.message


def test_text_that_is_not_unicode_is_named(rig: Rig, tokenizer: Path, tmp_path: Path) -> None:
    rig.register("ce", write_cross_encoder(tmp_path / "ce.onnx"), tokenizer)
    with pytest.raises(RerankInputError) as bad:
        rig.service().rerank("ce", QUERY, ["the cat", "a \ud800 dog"])
    assert bad.value.field == "documents[1]"
    with pytest.raises(RerankInputError) as bad_query:
        rig.service().rerank("ce", "cat \udfff", ["the cat"])
    assert bad_query.value.field == "query"
