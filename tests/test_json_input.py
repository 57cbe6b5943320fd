"""shared.json_input reads what ``json.loads`` reads, as ``json.loads`` reads it, though
orjson reads most of it: every value, type and refusal is checked against the standard
library on random documents, numbers written every way JSON allows, and random bytes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.json_input import JsonInputError, loads
from tests.support.filters import PROPERTY
from tests.support.json_values import DOCUMENTS, same

# Numbers as a sender may write them: signs, leading-zero fractions, long mantissas,
# exponents of every case and sign, integers past 64 bits.
_number_text = st.from_regex(
    r"\A-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,4})?\Z", fullmatch=True
)


def _agrees(data: bytes | str) -> None:
    try:
        want = json.loads(data)
    except (ValueError, RecursionError):
        with pytest.raises(JsonInputError):
            loads(data)
        return
    assert same(loads(data), want), data


@PROPERTY
@given(DOCUMENTS, st.booleans(), st.sampled_from([None, 2]))
def testDOCUMENTS_read_as_json_reads_them(doc: Any, ascii_only: bool, indent: int | None) -> None:
    text = json.dumps(doc, ensure_ascii=ascii_only, indent=indent)
    _agrees(text)
    _agrees(text.encode("utf-8", "surrogatepass"))


@PROPERTY
@given(st.lists(_number_text, min_size=1, max_size=8))
def test_numbers_read_as_json_reads_them(numbers: list[str]) -> None:
    _agrees("[" + ",".join(numbers) + "]")
    _agrees(numbers[0].encode())
    _agrees('{"n":' + numbers[-1] + "}")


@PROPERTY
@given(st.binary(max_size=40) | st.text(max_size=40).map(str.encode))
def test_any_bytes_are_read_or_refused_as_json_does(data: bytes) -> None:
    _agrees(data)


@pytest.mark.parametrize(
    ("data", "want"),
    [
        (b"123456789012345678901234567890", 123456789012345678901234567890),
        (b'{"id": -98765432109876543210}', {"id": -98765432109876543210}),
        (b"[18446744073709551616]", [18446744073709551616]),  # 2**64: past orjson's range
        (b"[NaN, -Infinity]", None),
        ("\ufeff[1]".encode(), [1]),
        (b'"\\ud800"', "\ud800"),
        ("[1]".encode("utf-16"), [1]),
    ],
)
def test_what_orjson_reads_otherwise_or_refuses_reads_as_json(data: bytes, want: Any) -> None:
    got = loads(data)
    if want is None:
        assert math.isnan(got[0]) and got[1] == -math.inf
    else:
        assert same(got, want)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"[1,]", "Expecting value"),  # json's own message, not orjson's
        (b"\xff", "not UTF-8"),
        (b"[" * 100_000, "nested too deeply"),
        (b"1" * 5000, "digits"),
    ],
)
def test_refusals_say_why_in_json_terms(data: bytes, reason: str) -> None:
    with pytest.raises(JsonInputError, match=reason):
        loads(data)
