"""(query, document) pairs as a cross-encoder reads them: ``[CLS] query [SEP] document
[SEP]`` (or whatever pair template the model's tokenizer file declares), with segment ids,
cut on the document side only.

The query is tokenized once per call and each document once, both without special
tokens; a document longer than the room the query leaves under the model's limit (or
than the caller's ``max_tokens_per_doc``) is cut at a token boundary, and the tokenizer's
own post-processor then adds the special tokens and segment ids. This is what the
tokenizers library's ``only_second`` truncation produces, without tokenizing the query
once per document, and it keeps each document's own token count for the reply to report
what was cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.errors import InvalidInputError


class RerankInputError(InvalidInputError):
    """A query or document that cannot be scored; ``field`` names it."""

    code = "invalid_request"


@dataclass(frozen=True)
class EncodedPairs:
    """One call's pairs, in the documents' order: each pair's token ids and segment ids
    (special tokens included), and what the cut left of each document."""

    ids: list[list[int]]
    type_ids: list[list[int]]
    query_tokens: int
    document_tokens: list[int]  # each document's own tokens, before any cut
    kept_tokens: list[int]  # each document's tokens in its pair

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def input_tokens(self) -> int:
        """Tokens the model reads for these pairs (special tokens included, no padding)."""
        return sum(map(len, self.ids))

    def truncated(self) -> list[tuple[int, int, int]]:
        """(index, document tokens, kept tokens) of each document that was cut."""
        return [
            (i, total, kept)
            for i, (total, kept) in enumerate(
                zip(self.document_tokens, self.kept_tokens, strict=True)
            )
            if kept < total
        ]


class PairTokenizer:
    """A tokenizer read for pairs: no truncation or padding of its own (the cut and the
    padding are done here, per call, to the model's limit: ``embedder.token_limit``).

    Only read after construction (``encode``, ``encode_batch`` and ``post_process`` take
    it by shared reference), so one instance serves concurrent calls without a lock."""

    def __init__(self, tokenizer: Any) -> None:
        padding = tokenizer.padding or {}
        pad_token = padding.get("pad_token", "[PAD]")
        self.pad_id = int(padding.get("pad_id", tokenizer.token_to_id(pad_token) or 0))
        self.pad_type_id = int(padding.get("pad_type_id", 0))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.tokenizer = tokenizer
        #: Special tokens a pair adds ([CLS] and two [SEP] for BERT).
        self.special = int(tokenizer.num_special_tokens_to_add(is_pair=True))

    def encode(
        self, query: str, documents: Sequence[str], limit: int, max_tokens_per_doc: int | None
    ) -> EncodedPairs:
        """The pairs of ``query`` with each document, each at most ``limit`` tokens; a
        document is cut to what fits (and to ``max_tokens_per_doc``), the query never:
        a query that leaves no room for a single document token is a 400 naming it."""
        q = self._encode_one(query, "query")
        room = limit - len(q.ids) - self.special
        if room < 1:
            raise RerankInputError(
                f"query: {len(q.ids)} tokens; with the {self.special} special tokens of a "
                f"pair it leaves no room for a document within the model's limit of {limit} "
                "tokens. Shorten the query (documents are cut to fit; the query never is).",
                field="query",
            )
        keep = room if max_tokens_per_doc is None else min(room, max_tokens_per_doc)
        docs = self._encode_documents(documents)
        ids: list[list[int]] = []
        type_ids: list[list[int]] = []
        totals: list[int] = []
        kept: list[int] = []
        post_process = self.tokenizer.post_process
        for doc in docs:
            total = len(doc.ids)
            if total > keep:
                doc.truncate(keep)  # the query's encoding is never cut
            pair = post_process(q, doc, add_special_tokens=True)
            ids.append(pair.ids)
            type_ids.append(pair.type_ids)
            totals.append(total)
            kept.append(min(total, keep))
        return EncodedPairs(ids, type_ids, len(q.ids), totals, kept)

    def _encode_one(self, text: str, field: str) -> Any:
        try:
            return self.tokenizer.encode(text, add_special_tokens=False)
        except TypeError:
            _raise_unencodable([text], [field])
            raise

    def _encode_documents(self, documents: Sequence[str]) -> list[Any]:
        # Without character offsets (nothing here reads them): some 15% faster.
        encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        try:
            return encode(list(documents), add_special_tokens=False)
        except TypeError:
            _raise_unencodable(documents, [f"documents[{i}]" for i in range(len(documents))])
            raise

    def feeds(
        self,
        ids: Sequence[list[int]],
        type_ids: Sequence[list[int]],
        length: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """input_ids, token_type_ids and attention_mask (int64), padded to the longest
        row or to ``length`` (a model with a fixed sequence dimension)."""
        n = len(ids)
        width = length if length is not None else max(map(len, ids))
        input_ids = np.full((n, width), self.pad_id, dtype=np.int64)
        segments = np.full((n, width), self.pad_type_id, dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        for row, (tokens, types) in enumerate(zip(ids, type_ids, strict=True)):
            k = len(tokens)
            input_ids[row, :k] = tokens
            segments[row, :k] = types
            mask[row, :k] = 1
        return input_ids, segments, mask


def _raise_unencodable(texts: Sequence[str], fields: Sequence[str]) -> None:
    """The tokenizer's TypeError does not say which text; find it (lone surrogates)."""
    for text, field in zip(texts, fields, strict=True):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise RerankInputError(
                f"{field}: not valid Unicode text ({exc.reason} at {exc.start})", field=field
            ) from None
