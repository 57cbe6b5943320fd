"""Texts users read (job and model errors, HTTP messages) carry no internal file paths.

Library errors name the files they touched (`/tmp/hartonomous/model-cache/<sha>/...`):
that says where the app keeps its data and helps nobody fix a request. Each absolute
path is cut to its last part, which is what a user can act on (a file name).
"""

from __future__ import annotations

import re

# An absolute POSIX path of two or more parts, not inside a URL (no ':' '/' or word
# character right before it).
_PATH = re.compile(r"(?<![\w:/.~-])/(?:[^\s'\"`:,;()\[\]{}<>/]+/)+([^\s'\"`:,;()\[\]{}<>/]*)")


def without_paths(text: str) -> str:
    """`text` with each absolute file path replaced by its last part."""
    return _PATH.sub(lambda m: m.group(1) or "<folder>", text)
