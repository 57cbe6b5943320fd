"""shared.http.responses.dumps writes what ``json`` writes, with null for NaN and the
infinities, though orjson writes most of it: checked by reading the text back."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given

from shared.http.responses import dumps
from tests.support.filters import PROPERTY
from tests.support.json_values import DOCUMENTS, same


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _strict(text: str) -> Any:
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in {text!r}"))


@PROPERTY
@given(DOCUMENTS)
def test_documents_read_back_as_written_with_null_for_non_finite(doc: Any) -> None:
    assert same(_strict(dumps(doc)), _finite(doc))


@pytest.mark.parametrize(
    ("body", "want"),
    [
        ({"n": 2**70, "m": -(2**64)}, {"n": 2**70, "m": -(2**64)}),  # past orjson's range
        ({1: "a", None: "b"}, {"1": "a", "null": "b"}),  # keys json turns into text
        ({"v": [np.float64(0.5), float("nan")]}, {"v": [0.5, None]}),
        ({"t": (1, 2.5)}, {"t": [1, 2.5]}),
    ],
)
def test_what_orjson_cannot_write_is_written_as_json_writes_it(body: Any, want: Any) -> None:
    assert same(_strict(dumps(body)), want)


def test_what_neither_can_write_is_refused() -> None:
    with pytest.raises(TypeError, match="float32"):
        dumps({"v": np.float32(0.5)})
