"""Model names become blob names and cache paths: checked before any call."""

from __future__ import annotations

import re

from shared.errors import InvalidInputError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class InvalidNameError(InvalidInputError):
    """A name breaks a rule a schema pattern cannot say (such as no "..")."""

    code = "invalid_name"
    field: str

    def __init__(self, field: str, value: str, reason: str) -> None:
        super().__init__(f"{field}: {value!r} {reason}", field=field, reason=reason)


def validate_model_name(name: str, field: str = "name") -> str:
    """Letters, digits and `._-`, 1-128 chars, starting with a letter or digit, no `..`.

    No path parts: a name can never reach outside its container or cache folder.
    """
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise InvalidNameError(
            field,
            name,
            "is not a valid model name (1-128 of letters, digits, '.', '_', '-'; "
            "starts with a letter or digit; no '..' or '/')",
        )
    return name


def model_name_from_blob(blob_name: str) -> str:
    """`iris.onnx` -> `iris`; the blob must be a top-level `.onnx` file."""
    if "/" in blob_name or not blob_name.endswith(".onnx"):
        raise InvalidNameError("blob", blob_name, "is not a top-level .onnx file")
    return validate_model_name(blob_name[: -len(".onnx")], "blob")
