"""The OpenAI embeddings API's wire shapes and encodings, without a host: request
parsing (token ids refused), `dimensions` renormalisation, base64 as the openai SDK
decodes it, and the reply against its declared shape."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from shared.embeddings.openai.codec import embeddings_body, encode_rows, shorten, unix_seconds
from shared.embeddings.openai.shapes import (
    MAX_INPUTS,
    EmbeddingsRequest,
    EmbeddingsResponse,
    ModelDetail,
    TokenIdsError,
)
from shared.errors import InvalidInputError
from shared.http.errors import openai_response, reply_for
from shared.http.requests import parse_json


def _request(**body) -> EmbeddingsRequest:
    return parse_json(json.dumps({"model": "m", **body}).encode(), EmbeddingsRequest)


def _unit_rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_input_is_one_text_or_a_list_and_float_is_the_default() -> None:
    one = _request(input="hello")
    assert one.input == ["hello"] and one.encoding_format == "float" and one.dimensions is None
    many = _request(input=["a", "", "c"], encoding_format="base64", dimensions=8, user="u-1")
    assert many.input == ["a", "", "c"] and many.encoding_format == "base64"
    assert many.dimensions == 8 and many.user == "u-1"


@pytest.mark.parametrize("ids", [[101, 2023, 102], [[101, 2023, 102], [101, 102]], [[]]])
def test_token_ids_are_refused_saying_what_to_set(ids) -> None:
    with pytest.raises(TokenIdsError) as err:
        _request(input=ids)
    assert err.value.field == "input" and err.value.code == "token_ids_not_supported"
    assert "check_embedding_ctx_length=False" in err.value.message
    # In OpenAI's error shape, a 400 the SDK raises as BadRequestError.
    reply = openai_response(reply_for(err.value, "test"))
    body = json.loads(reply.get_body())["error"]
    assert reply.status_code == 400 and body["param"] == "input"
    assert body["type"] == "invalid_request_error" and body["code"] == "token_ids_not_supported"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"input": []}, "input", "must not be empty"),
        ({"input": ["a", 3]}, "input[1]", "expected a string, got int"),
        ({"input": ["a", None]}, "input[1]", "expected a string, got NoneType"),
        ({"input": {"text": "a"}}, "input", "expected a string or a list"),
        ({"input": ["a"] * (MAX_INPUTS + 1)}, "input", f"at most {MAX_INPUTS}"),
    ],
)
def test_bad_input_names_the_item(body, field, words) -> None:
    with pytest.raises(InvalidInputError) as err:
        _request(**body)
    assert err.value.field == field and words in err.value.message
    assert not isinstance(err.value, TokenIdsError)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": "a", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "a", "dimensions": 0}, "dimensions"),
        ({"input": "a", "temperature": 1}, "temperature"),
        ({"input": "a", "model": ""}, "model"),
    ],
)
def test_other_fields_are_checked_like_every_request(body, field) -> None:
    with pytest.raises(Exception) as err:  # the route's 400, named below
        _request(**body)
    reply = reply_for(err.value, "test")
    assert reply.status == 400 and reply.field == field


def test_dimensions_keeps_the_leading_components_at_unit_length() -> None:
    vectors = _unit_rows(5, 64)
    short = shorten(vectors, 16)
    assert short.shape == (5, 16) and short.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-6)
    # Same direction as the prefix: the prefix scaled by a positive number per row.
    expected = vectors[:, :16] / np.linalg.norm(vectors[:, :16], axis=1, keepdims=True)
    np.testing.assert_allclose(short, expected, atol=1e-6)
    assert shorten(vectors, None) is vectors and shorten(vectors, 64) is vectors
    zero = shorten(np.zeros((1, 4), dtype=np.float32), 2)  # a zero prefix stays finite
    assert np.isfinite(zero).all()


def test_dimensions_above_the_width_names_the_field() -> None:
    with pytest.raises(InvalidInputError) as err:
        shorten(_unit_rows(2, 64), 65)
    assert (
        err.value.field == "dimensions" and "65 is more than this model's 64" in err.value.message
    )


def test_base64_is_what_the_openai_sdk_decodes() -> None:
    import openai
    from openai.lib._parsing._embeddings import parse_embedding_response
    from openai.types.create_embedding_response import CreateEmbeddingResponse

    vectors = _unit_rows(3, 24, seed=4)
    body = embeddings_body("m", vectors, 17, "base64")
    first = base64.b64decode(body["data"][0]["embedding"])
    assert first == vectors[0].astype("<f4").tobytes()  # little-endian float32, row by row
    # The SDK's own decoding of a reply it asked base64 for (its caller named no format);
    # it builds the reply without validation, as here.
    parsed = parse_embedding_response(
        CreateEmbeddingResponse.construct(**body), encoding_format=openai.omit
    )
    decoded = np.asarray([d.embedding for d in parsed.data], dtype=np.float32)
    np.testing.assert_array_equal(decoded, vectors)


def test_float_rows_round_trip_exactly_through_json() -> None:
    vectors = _unit_rows(2, 8, seed=1)
    rows = json.loads(json.dumps(encode_rows(vectors, "float")))
    np.testing.assert_array_equal(np.asarray(rows, dtype=np.float32), vectors)


def test_the_reply_has_the_declared_shape() -> None:
    body = embeddings_body("minilm", _unit_rows(2, 4), 9, "float")
    parsed = EmbeddingsResponse.model_validate(body)
    assert parsed.object == "list" and parsed.model == "minilm"
    assert [(d.object, d.index) for d in parsed.data] == [("embedding", 0), ("embedding", 1)]
    assert parsed.usage.prompt_tokens == parsed.usage.total_tokens == 9
    detail = ModelDetail(
        id="m", created=1, owned_by="o", version=2, max_tokens=128, max_tokens_source="tokenizer"
    ).model_dump()
    assert detail["object"] == "model" and detail["max_tokens"] == 128


def test_stored_timestamps_become_unix_seconds() -> None:
    assert unix_seconds("1970-01-01T00:01:40.500Z") == 100
    assert unix_seconds("2024-01-01T00:00:00.000") == 1704067200
