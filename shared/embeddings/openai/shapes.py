"""The OpenAI embeddings API as clients send it: ``POST /v1/embeddings`` and
``GET /v1/models``, field for field.

``input`` is a string or a list of strings. OpenAI also takes token ids (a list of ints,
or a list of such lists), and LangChain's ``OpenAIEmbeddings`` sends tiktoken ids unless
built with ``check_embedding_ctx_length=False``; ids of another vocabulary mean nothing
to this server's tokenizers, so they are refused with a message that says what to set.
Light on purpose (no numpy): function_app.py imports it through the routes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field

from shared.errors import InvalidInputError
from shared.http.shapes import Strict

#: Most inputs in one request, as OpenAI allows.
MAX_INPUTS = 2048

TOKEN_IDS = (
    "input: token ids are not accepted: this server tokenizes text with each model's own "
    "tokenizer, and ids from another vocabulary (tiktoken's) mean nothing to it; send the "
    "texts. LangChain's OpenAIEmbeddings sends token ids unless it is built with "
    "check_embedding_ctx_length=False: set that."
)


class TokenIdsError(InvalidInputError):
    """``input`` holds token ids instead of text."""

    code = "token_ids_not_supported"

    def __init__(self) -> None:
        super().__init__(TOKEN_IDS, field="input")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def input_texts(value: Any) -> list[str]:
    """``input`` as a list of texts: a string is one text. Token ids (a list of ints, or
    a list of lists of ints) are a TokenIdsError; anything else a 400 naming the item."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise InvalidInputError(
            f"input: expected a string or a list of strings, got {type(value).__name__}",
            field="input",
        )
    if not value:
        raise InvalidInputError("input: must not be empty", field="input")
    if len(value) > MAX_INPUTS:
        raise InvalidInputError(
            f"input: {len(value)} items; at most {MAX_INPUTS} per request", field="input"
        )
    first = value[0]
    if _is_int(first) or (isinstance(first, list) and (not first or _is_int(first[0]))):
        raise TokenIdsError()
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise InvalidInputError(
                f"input[{i}]: expected a string, got {type(item).__name__}", field=f"input[{i}]"
            )
    return value


class EmbeddingsRequest(Strict):
    """``POST /v1/embeddings``."""

    model: str = Field(min_length=1, max_length=128, description="A registered text model.")
    input: Annotated[
        list[str], BeforeValidator(input_texts, json_schema_input_type=str | list[str])
    ] = Field(
        description="One text or a list of up to 2048; each within the model's token "
        "limit (a longer one is a 400 naming input[i]). Token ids are refused.",
    )
    encoding_format: Literal["float", "base64"] = Field(
        "float",
        description="base64: each vector as the base64 of its little-endian float32 bytes "
        "(what the openai SDK asks for when its caller names no format).",
    )
    dimensions: int | None = Field(
        None,
        ge=1,
        description="Keep the first N components, renormalised to unit length; at most "
        "the model's width.",
    )
    user: str | None = Field(None, max_length=256, description="Accepted and not used.")


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of float32 LE.")


class Usage(BaseModel):
    prompt_tokens: int = Field(description="Tokens of every input, special tokens included.")
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(description="Unix seconds: when this version was registered.")
    owned_by: str


class ModelDetail(ModelObject):
    """One model, with what the list leaves out (extra fields the SDK keeps)."""

    version: int = Field(description="The registered version that serves the name.")
    max_tokens: int = Field(description="Most tokens per input, special tokens included.")
    max_tokens_source: str = Field(
        description="Where the limit comes from: registration, tokenizer, model_input, "
        "position_embeddings or default."
    )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]
