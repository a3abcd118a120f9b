"""Wire formats, sans I/O: the typed events a call emits (`events`), the client messages it
reads (`commands`), the error table (`errors`), and the dialects that render one into the other
for the browser door (`dialect`, `envelope`). Nothing here imports asyncio or aiohttp; the
doors in `voicebot.server` are thin shells that send what a dialect returns.
"""

from __future__ import annotations

from .dialect import Dialect, Frame, Silent, VoicebotDialect
from .envelope import EnvelopeDialect

DIALECTS: dict[str, type[Dialect]] = {
    VoicebotDialect.name: VoicebotDialect,
    EnvelopeDialect.name: EnvelopeDialect,
}


def make_dialect(
    name: str, *, call_id: str, session_id: str | None, max_text_chars: int
) -> Dialect:
    """The named dialect for one connection; `KeyError` for a name not in `DIALECTS`."""
    return DIALECTS[name](call_id=call_id, session_id=session_id, max_text_chars=max_text_chars)


__all__ = ["DIALECTS", "Dialect", "EnvelopeDialect", "Frame", "Silent", "VoicebotDialect"]
