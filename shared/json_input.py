"""JSON that comes from outside the app: a request body, a queue message, a file in the
ingest container.

Why one place: ``json.loads`` refuses input in four ways, and only one of them is a
``JSONDecodeError``. A number of more than 4,300 digits is a bare ``ValueError``, deep
nesting a ``RecursionError``, bad UTF-8 a ``UnicodeDecodeError``; a caller that catches
only the first turns the others into a 500 or a failed invocation.
"""

from __future__ import annotations

import json
import sys
from typing import Any


class JsonInputError(ValueError):
    """The input is not JSON this app can read; the message says why, for the sender."""


def loads(data: bytes | str) -> Any:
    """``json.loads``, with every refusal a ``JsonInputError``."""
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise JsonInputError(str(exc)) from None
    except UnicodeDecodeError:
        raise JsonInputError("not UTF-8 text") from None
    except RecursionError:  # json's C scanner recurses once per nesting level
        raise JsonInputError("nested too deeply") from None
    except ValueError:  # int(): CPython's limit on the digits of a number
        raise JsonInputError(
            f"a number has more than {sys.get_int_max_str_digits()} digits"
        ) from None
