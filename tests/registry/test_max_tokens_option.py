"""The ``max_tokens`` registration option: checked where an upload gives it (the query of
POST /api/models, or the blob's x-ms-meta-max_tokens), carried as blob metadata."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.registry.service import OPTIONS, registration_options
from shared.registry.shapes import UploadQuery
from shared.storage.names import InvalidNameError


def test_max_tokens_is_an_option_carried_as_text() -> None:
    assert "max_tokens" in OPTIONS
    assert registration_options({"Max_Tokens": "256"}) == {"max_tokens": "256"}
    assert UploadQuery(name="m", max_tokens=8192).options() == {"max_tokens": "8192"}
    assert "max_tokens" not in UploadQuery(name="m").options()


@pytest.mark.parametrize("bad", ["4", "lots", "256.5", "-1", "131073"])
def test_a_bad_max_tokens_names_the_option(bad: str) -> None:
    with pytest.raises(InvalidNameError) as err:
        registration_options({"max_tokens": bad})
    assert err.value.field == "max_tokens"
    assert "whole number of tokens from 8 to 131072" in err.value.message


@pytest.mark.parametrize("bad", [7, 131073])
def test_the_upload_query_has_the_same_bounds(bad: int) -> None:
    with pytest.raises(ValidationError):
        UploadQuery(name="m", max_tokens=bad)
