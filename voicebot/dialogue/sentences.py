"""Cutting streamed reply text into pieces TTS can start on.

The first audio of a reply should not wait for the whole reply: text is released at each sentence
end, and a long sentence is released early at a clause boundary so the first piece stays short.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)|[\n]+")
_CLAUSE_END = re.compile(r"[,;:—–](?=\s)")


class SentenceSplitter:
    def __init__(self, max_clause_chars: int = 120, min_chars: int = 12) -> None:
        self.max_clause_chars = max_clause_chars
        self.min_chars = min_chars
        self._buf = ""

    def push(self, text: str) -> list[str]:
        self._buf += text
        out: list[str] = []
        while True:
            piece = self._next_piece()
            if piece is None:
                return out
            out.append(piece)

    def flush(self) -> list[str]:
        rest, self._buf = self._buf.strip(), ""
        return [rest] if rest else []

    def _next_piece(self) -> str | None:
        for m in _SENTENCE_END.finditer(self._buf):
            if m.end() >= self.min_chars or len(self._buf[: m.end()].strip()) >= 2:
                return self._cut(m.end())
        if len(self._buf) > self.max_clause_chars:
            clauses = [m.end() for m in _CLAUSE_END.finditer(self._buf, 0, self.max_clause_chars)]
            if clauses and clauses[-1] >= self.min_chars:
                return self._cut(clauses[-1])
            space = self._buf.rfind(" ", self.min_chars, self.max_clause_chars)
            if space > 0:
                return self._cut(space)
        return None

    def _cut(self, at: int) -> str | None:
        piece, self._buf = self._buf[:at].strip(), self._buf[at:].lstrip()
        return piece or None


def spaced(previous: str, piece: str, delta: bool, previous_delta: bool = False) -> str:
    """The text to append for `piece`: a delta that continues a delta as given (it carries its
    own spacing); anything else after a space."""
    if delta and previous_delta:
        return piece
    if not previous or previous[-1:].isspace() or piece[:1].isspace():
        return piece
    return " " + piece


def join_pieces(pieces: Iterable[str | tuple[str, bool]]) -> str:
    """Join reply pieces the way the call speaks them: a `str` is a whole prompt, a
    `(text, delta)` pair says which it is."""
    out, last_delta = "", False
    for piece in pieces:
        text, delta = (piece, False) if isinstance(piece, str) else piece
        out += spaced(out, text, delta, last_delta)
        last_delta = delta
    return out.strip()
