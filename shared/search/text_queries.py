"""Which function embeds a search's ``text``: one per process, set by the composition root.

Embedding text is the embeddings feature's work, and that feature sits above search,
which may not import it; ``function_app.py`` hands its function down instead. This
module imports nothing heavy: the composition root imports it at startup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: (model, text) -> the text's vector by that registered text model. Errors it raises
#: may name the text as the first of a list (``text[0]``); the search names it ``text``.
TextEmbedder = Callable[[str, str], "np.ndarray"]

_embedder: TextEmbedder | None = None


def use(embed: TextEmbedder) -> None:
    """Let searches by ``text`` embed it with ``embed``."""
    global _embedder
    _embedder = embed


def embedder() -> TextEmbedder | None:
    """The function set by ``use``, or None in a process that set none."""
    return _embedder
