from __future__ import annotations

import pytest

from shared.errors import InvalidInputError
from shared.vectors.errors import (
    DimensionMismatchError,
    LimitExceededError,
    NonFiniteError,
    VectorError,
    VectorFormatError,
)


@pytest.mark.parametrize(
    "cls", [VectorFormatError, DimensionMismatchError, NonFiniteError, LimitExceededError]
)
def test_every_error_is_invalid_input_with_code_field_message(cls: type[VectorError]) -> None:
    err = cls("vectors[3]", "something is off")
    assert isinstance(err, VectorError) and isinstance(err, InvalidInputError)
    assert not isinstance(err, ValueError)  # caught by its kind, never as a builtin
    assert (err.code, err.field) == (cls.code, "vectors[3]")
    assert err.message == "vectors[3]: something is off" == str(err)


def test_codes_are_distinct() -> None:
    codes = {
        c.code
        for c in (
            VectorError,
            VectorFormatError,
            DimensionMismatchError,
            NonFiniteError,
            LimitExceededError,
        )
    }
    assert len(codes) == 5


def test_dimension_message_names_both_fields() -> None:
    err = DimensionMismatchError.between("b", 3, "a", 4)
    assert str(err) == "b: dimension 3 does not match a: dimension 4"
    assert err.field == "b"
