"""The OpenAI embeddings API through the local host, called by the real clients, each set
up with only ``base_url`` and ``api_key``: the openai SDK, LangChain's OpenAIEmbeddings
and LlamaIndex's OpenAILikeEmbedding, on the real all-MiniLM-L6-v2 (int8 ONNX). Their
vectors match ``/api/embeddings/text`` for the same texts (cosine >= 0.99999)."""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tests.support.host import Host, register_minilm, upload_blob, wait_for_model
from tests.support.models import write_classifier
from tests.support.pretrained import find_minilm

MINILM = find_minilm()
CLIENTS = ("openai", "langchain_openai", "llama_index.embeddings.openai_like")
pytestmark = [
    pytest.mark.skipif(MINILM is None, reason="MiniLM packages are not installed"),
    pytest.mark.skipif(
        any(importlib.util.find_spec(m.split(".")[0]) is None for m in CLIENTS),
        reason="the OpenAI client packages are not installed (requirements-dev.txt)",
    ),
]

TEXTS = [
    "A man is playing a guitar.",
    "Someone is strumming an acoustic guitar.",
    "The central bank raised interest rates again.",
    "",
    "Ünïcode, emoji 🎸 and punctuation!?",
]
#: Far over MiniLM's limit: its tokenizer file truncates at 128 tokens.
LONG = "The quarterly report showed revenue growth in every region but one. " * 30
MIN_COSINE = 0.99999


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.einsum("ij,ij->i", a, b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _token_counts(texts: list[str]) -> list[int]:
    """Each text's tokens by the model's own tokenizer, uncut, special tokens included."""
    from tokenizers import Tokenizer

    assert MINILM is not None
    tokenizer = Tokenizer.from_file(str(MINILM[1]))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return [len(tokenizer.encode(t).ids) for t in texts]


@pytest.fixture(scope="module")
def minilm(app_host: Host) -> str:
    return register_minilm(app_host)


@pytest.fixture(scope="module")
def reference(app_host: Host, minilm: str) -> np.ndarray:
    """The app's own text route's vectors for TEXTS."""
    reply = app_host.call("POST", "/embeddings/text", {"model": minilm, "texts": TEXTS})
    assert reply.status == 200, reply.body
    return np.asarray(reply.json()["vectors"], dtype=np.float32)


@pytest.fixture(scope="module")
def base_url(app_host: Host) -> str:
    return f"{app_host.base_url}/v1"


@pytest.fixture(scope="module")
def client(base_url: str, app_host: Host):
    import openai

    return openai.OpenAI(base_url=base_url, api_key=app_host.key)


def _bearer(app_host: Host, key: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key or app_host.key}"}


# -- the openai SDK -------------------------------------------------------------------


def test_sdk_default_encoding_is_base64_and_matches_the_text_route(
    client, minilm: str, reference: np.ndarray
) -> None:
    out = client.embeddings.create(model=minilm, input=TEXTS)  # the SDK asks for base64
    assert out.object == "list" and out.model == minilm
    assert [d.index for d in out.data] == list(range(len(TEXTS)))
    vectors = np.asarray([d.embedding for d in out.data], dtype=np.float32)
    assert vectors.shape == (len(TEXTS), 384)
    assert _cosines(vectors, reference).min() >= MIN_COSINE
    counts = _token_counts(TEXTS)
    assert out.usage.prompt_tokens == out.usage.total_tokens == sum(counts)


def test_sdk_float_encoding_and_a_single_string(client, minilm: str, reference) -> None:
    out = client.embeddings.create(model=minilm, input=TEXTS, encoding_format="float")
    assert all(isinstance(d.embedding, list) for d in out.data)
    vectors = np.asarray([d.embedding for d in out.data], dtype=np.float32)
    assert _cosines(vectors, reference).min() >= MIN_COSINE
    one = client.embeddings.create(model=minilm, input=TEXTS[0])
    assert len(one.data) == 1 and one.usage.prompt_tokens == _token_counts(TEXTS[:1])[0]
    assert _cosines(np.asarray([one.data[0].embedding]), reference[:1])[0] >= MIN_COSINE


def test_sdk_dimensions_keeps_the_leading_components_at_unit_length(
    client, minilm: str, reference: np.ndarray
) -> None:
    for encoding in ("base64", "float"):
        kwargs = {} if encoding == "base64" else {"encoding_format": "float"}
        out = client.embeddings.create(model=minilm, input=TEXTS, dimensions=128, **kwargs)
        vectors = np.asarray([d.embedding for d in out.data], dtype=np.float32)
        assert vectors.shape == (len(TEXTS), 128)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        assert _cosines(vectors, reference[:, :128]).min() >= MIN_COSINE


def test_base64_is_little_endian_float32_on_the_wire(
    app_host: Host, minilm: str, reference: np.ndarray
) -> None:
    reply = app_host.call(
        "POST",
        "/v1/embeddings",
        {"model": minilm, "input": TEXTS[:2], "encoding_format": "base64"},
        key=None,
        headers=_bearer(app_host),
    )
    assert reply.status == 200, reply.body
    data = reply.json()["data"]
    assert all(isinstance(d["embedding"], str) for d in data)
    raw = base64.b64decode(data[0]["embedding"])
    assert len(raw) == 384 * 4
    np.testing.assert_allclose(np.frombuffer(raw, dtype="<f4"), reference[0], atol=1e-6)


def test_wrong_or_missing_key_is_an_authentication_error(
    base_url: str, app_host: Host, minilm: str
) -> None:
    import openai

    wrong = openai.OpenAI(base_url=base_url, api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        wrong.embeddings.create(model=minilm, input="hello")
    assert err.value.status_code == 401
    assert "not-the-key" not in str(err.value)
    # The function key in x-functions-key (what the host reads) is not the Bearer key.
    reply = app_host.call("POST", "/v1/embeddings", {"model": minilm, "input": "x"})
    error = reply.json()["error"]
    assert reply.status == 401 and error["type"] == "invalid_request_error"
    assert "Authorization: Bearer" in error["message"]
    # The master key is accepted too, as the local host's keys are.
    from tests.support.host import MASTER_KEY

    master = openai.OpenAI(base_url=base_url, api_key=MASTER_KEY, max_retries=0)
    assert len(master.embeddings.create(model=minilm, input="hello").data) == 1


def test_unknown_model_is_not_found(client, minilm: str) -> None:
    import openai

    with pytest.raises(openai.NotFoundError) as err:
        client.embeddings.create(model="no-such-model", input="hello")
    assert err.value.status_code == 404
    assert err.value.body["param"] == "model" and err.value.body["code"] == "model_not_found"


def test_bad_input_is_a_bad_request_naming_the_field(client, minilm: str) -> None:
    import openai

    cases = [
        ({"input": TEXTS, "dimensions": 385}, "dimensions", "384"),
        ({"input": [TEXTS[0], LONG]}, "input[1]", "at most 128"),
        ({"input": []}, "input", "must not be empty"),
        ({"input": ["ok", 3.5]}, "input[1]", "expected a string"),
    ]
    for kwargs, param, words in cases:
        with pytest.raises(openai.BadRequestError) as err:
            client.embeddings.create(model=minilm, **kwargs)
        assert err.value.body["param"] == param, (kwargs, err.value.body)
        assert words in err.value.body["message"], err.value.body
    too_long = _token_counts([LONG])[0]
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model=minilm, input=[TEXTS[0], LONG])
    assert err.value.body["code"] == "context_length_exceeded"
    assert f"{too_long} tokens" in err.value.body["message"]


def test_token_ids_are_refused_with_what_to_set(client, minilm: str) -> None:
    import openai

    for ids in ([101, 7592, 102], [[101, 7592, 102], [101, 102]]):
        with pytest.raises(openai.BadRequestError) as err:
            client.embeddings.create(model=minilm, input=ids)
        assert "check_embedding_ctx_length=False" in err.value.body["message"]
        assert err.value.body["code"] == "token_ids_not_supported"


def test_models_lists_the_text_models_only(
    client, app_host: Host, minilm: str, tmp_path: Path
) -> None:
    import openai

    # A ready model with no tokenizer beside it cannot embed text: not listed.
    upload_blob(app_host, "iris-plain.onnx", write_classifier(tmp_path).read_bytes())
    assert wait_for_model(app_host, "iris-plain")["status"] == "ready"
    listed = client.models.list()
    ids = [m.id for m in listed.data]
    assert minilm in ids and "iris-plain" not in ids
    entry = next(m for m in listed.data if m.id == minilm)
    assert entry.object == "model" and entry.owned_by == "hartonomous"
    assert entry.created > 1_600_000_000
    one = client.models.retrieve(minilm)
    assert one.id == minilm and one.created == entry.created
    extra = one.model_extra or {}
    # all-MiniLM-L6-v2's tokenizer.json truncates at 128: the limit comes from it.
    assert extra["max_tokens"] == 128 and extra["max_tokens_source"] == "tokenizer"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("iris-plain")  # takes no input_ids: not a text model


def test_the_limit_comes_from_the_registration_or_else_the_model(client, app_host: Host) -> None:
    import json

    import openai

    assert MINILM is not None
    model_path, tokenizer_path = MINILM
    # Registered with max_tokens (POST /api/models?max_tokens=): the registration wins.
    upload_blob(app_host, "minilm16.tokenizer.json", tokenizer_path.read_bytes())
    refused = app_host.call("POST", "/models?name=minilm16&max_tokens=4", raw=b"x")
    assert refused.status == 400 and refused.json()["error"]["field"] == "max_tokens"
    reply = app_host.call(
        "POST", "/models?name=minilm16&max_tokens=16", raw=model_path.read_bytes()
    )
    assert reply.status == 202, reply.body
    model = wait_for_model(app_host, "minilm16", timeout=180)
    assert model["status"] == "ready" and model["metadata"]["max_tokens"] == "16", model
    extra = client.models.retrieve("minilm16").model_extra or {}
    assert (extra["max_tokens"], extra["max_tokens_source"]) == (16, "registration")
    words = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen x"
    counts = _token_counts([words])
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="minilm16", input=["fine", words])
    assert err.value.body["param"] == "input[1]"
    assert f"{counts[0]} tokens" in err.value.body["message"] and "at most 16" in str(err.value)
    # A tokenizer file that sets no truncation: the model's position table (512 rows).
    spec = json.loads(tokenizer_path.read_text())
    spec["truncation"] = None
    upload_blob(app_host, "minilm-open.tokenizer.json", json.dumps(spec).encode())
    upload_blob(app_host, "minilm-open.onnx", model_path.read_bytes())
    assert wait_for_model(app_host, "minilm-open", timeout=180)["status"] == "ready"
    extra = client.models.retrieve("minilm-open").model_extra or {}
    assert (extra["max_tokens"], extra["max_tokens_source"]) == (512, "position_embeddings")
    out = client.embeddings.create(model="minilm-open", input=[LONG])  # 128 < its tokens < 512
    assert 128 < out.usage.prompt_tokens == _token_counts([LONG])[0] < 512


# -- LangChain and LlamaIndex -----------------------------------------------------------


def test_langchain_openai_embeddings(base_url: str, app_host: Host, minilm, reference) -> None:
    from langchain_openai import OpenAIEmbeddings

    embeddings = OpenAIEmbeddings(
        model=minilm, base_url=base_url, api_key=app_host.key, check_embedding_ctx_length=False
    )
    documents = np.asarray(embeddings.embed_documents(TEXTS), dtype=np.float32)
    assert _cosines(documents, reference).min() >= MIN_COSINE
    query = np.asarray([embeddings.embed_query(TEXTS[1])], dtype=np.float32)
    assert _cosines(query, reference[1:2])[0] >= MIN_COSINE


def _tiktoken_cache() -> Path | None:
    """tiktoken's cl100k_base file as llama-index-core ships it: LangChain's default path
    encodes with it, and nothing here may download it."""
    spec = importlib.util.find_spec("llama_index.core")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "_static" / "tiktoken_cache"
    return folder if folder.is_dir() else None


def test_langchain_default_sends_token_ids_and_is_told_what_to_set(
    base_url: str, app_host: Host, minilm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openai
    from langchain_openai import OpenAIEmbeddings

    cache = _tiktoken_cache()
    if cache is None:
        pytest.skip("no local copy of tiktoken's cl100k_base")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    embeddings = OpenAIEmbeddings(model=minilm, base_url=base_url, api_key=app_host.key)
    with pytest.raises(openai.BadRequestError) as err:
        embeddings.embed_documents(TEXTS[:2])
    assert "check_embedding_ctx_length=False" in str(err.value)


def test_llamaindex_openai_like_embedding(base_url: str, app_host: Host, minilm, reference):
    from llama_index.embeddings.openai_like import OpenAILikeEmbedding

    embedding = OpenAILikeEmbedding(model_name=minilm, api_base=base_url, api_key=app_host.key)
    batch = np.asarray(embedding.get_text_embedding_batch(TEXTS), dtype=np.float32)
    assert _cosines(batch, reference).min() >= MIN_COSINE
    query = np.asarray([embedding.get_query_embedding(TEXTS[2])], dtype=np.float32)
    assert _cosines(query, reference[2:3])[0] >= MIN_COSINE


# -- truncation on the app's own route, and the OpenAPI document --------------------------


def test_text_route_says_which_texts_were_cut(app_host: Host, minilm: str, reference) -> None:
    texts = [TEXTS[0], LONG]
    reply = app_host.call("POST", "/embeddings/text", {"model": minilm, "texts": texts})
    body = reply.json()
    assert reply.status == 200 and body["max_tokens"] == 128
    assert body["truncated"] == [{"index": 1, "tokens": _token_counts([LONG])[0]}]
    assert _cosines(np.asarray(body["vectors"][:1]), reference[:1])[0] >= MIN_COSINE
    # Cut texts that share their first 128 tokens share their vector.
    both = [LONG, LONG + " and some more words at the end"]
    cut = app_host.call("POST", "/embeddings/text", {"model": minilm, "texts": both}).json()
    assert [t["index"] for t in cut["truncated"]] == [0, 1]
    assert _cosines(np.asarray(cut["vectors"][:1]), np.asarray(cut["vectors"][1:]))[0] > 0.99999
    short = app_host.call("POST", "/embeddings/text", {"model": minilm, "texts": TEXTS}).json()
    assert short["truncated"] == []
    refused = app_host.call(
        "POST", "/embeddings/text", {"model": minilm, "texts": texts, "truncate": False}
    )
    error = refused.json()["error"]
    assert refused.status == 400 and error["field"] == "texts[1]"
    assert error["code"] == "context_length_exceeded" and "at most 128" in error["message"]


def test_openapi_lists_the_openai_routes(app_host: Host) -> None:
    doc = app_host.call("GET", "/openapi.json", key=None).json()
    post = doc["paths"]["/v1/embeddings"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schema.endswith("/EmbeddingsRequest")
    assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/EmbeddingsResponse"
    )
    request = doc["components"]["schemas"]["EmbeddingsRequest"]["properties"]
    assert set(request) == {"model", "input", "encoding_format", "dimensions", "user"}
    assert "get" in doc["paths"]["/v1/models"] and "get" in doc["paths"]["/v1/models/{model}"]
    text = doc["components"]["schemas"]["TextEmbedRequest"]["properties"]
    assert "truncate" in text
