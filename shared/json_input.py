"""JSON that comes from outside the app: a request body, a queue message, a file in the
ingest container.

Why one place: ``json.loads`` refuses input in four ways, and only one of them is a
``JSONDecodeError``. A number of more than 4,300 digits is a bare ``ValueError``, deep
nesting a ``RecursionError``, bad UTF-8 a ``UnicodeDecodeError``; a caller that catches
only the first turns the others into a 500 or a failed invocation.

Why orjson first: a search body of 384 numbers takes ~200 us to read with ``json`` and
~20 us with orjson, time every concurrent caller waits for under Python's lock
(docs/concurrency.md). What orjson refuses (NaN and Infinity tokens, numbers past
float64, lone surrogates, a byte order mark, UTF-16 input, and text that is not JSON)
goes to ``json``, so what is accepted, what it reads as, and the error text are
``json``'s. So does any text with an integer of 19 digits or more: orjson reads one past
64 bits as a float, where ``json`` keeps every digit.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import orjson

#: Digits to "0", what may come just before a JSON number to "s", the rest to " ": a
#: number whose digits before any "." or exponent number 19 or more shows as "s" and
#: 19 "0"s. (A fraction's digits follow a ".", so a float of many digits does not.)
_NUMBER_STARTS = bytes(
    ord("0") if chr(b).isdigit() and b < 128 else ord("s") if chr(b) in "[,: \t\n\r-" else 32
    for b in range(256)
)
_LONG_INTEGER = b"s" + b"0" * 19


class JsonInputError(ValueError):
    """The input is not JSON this app can read; the message says why, for the sender."""


def loads(data: bytes | str) -> Any:
    """``json.loads``, with every refusal a ``JsonInputError``."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    marks = raw.translate(_NUMBER_STARTS)  # one pass, one copy of the body
    if _LONG_INTEGER not in marks and not marks.startswith(_LONG_INTEGER[1:]):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # json's answer and error text
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
