from __future__ import annotations

import pytest

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
def test_every_error_is_a_value_error_with_code_field_message(cls: type[VectorError]) -> None:
    err = cls("vectors[3]", "something is off")
    assert isinstance(err, VectorError) and isinstance(err, ValueError)
    assert err.field == "vectors[3]"
    assert err.message == "vectors[3]: something is off" == str(err)
    assert err.to_dict() == {"code": cls.code, "field": "vectors[3]", "message": err.message}


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
