"""The `envelope` dialect: for JSON-only clients that never read a binary frame.

Every message is `{"type", "content", "session_id", "timestamp", "metadata"}`, as those clients'
own server wrote it (`dataclasses.asdict` of its `WebSocketMessage`). A turn is gathered here
and sent once: `response` (a typed turn, or one where the bot has no audio) or `audio_response`
with the reply's audio as a base64 WAV file. Per-sentence text, partial transcripts, metrics and
intermediate statuses are not sent: such a client would show each one as a message.

A turn's message goes out when the reply has played (the call's `listening` status after it),
when the caller cuts it off, or when the call ends; a typed turn's as soon as its text is whole,
as that client's server answered text without audio.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .. import audio as pcm_codec
from ..audio import wav
from . import events as ev
from .commands import Command
from .dialect import Dialect, Frame, audio_config
from .errors import status_of

#: At most this much reply audio is gathered into one message (then the rest is dropped).
MAX_REPLY_S = 60


def _utc_now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat()


@dataclass
class _Turn:
    kind: str  # greeting, text, audio
    transcription: str = ""
    stt_confidence: float | None = None
    intent: str = "unknown"
    confidence: float = 0.0
    text: str | None = None
    processing: bool = False
    speaking: bool = False  # its reply's audio has begun: frames before are the last reply's
    audio: bytearray = field(default_factory=bytearray)
    rate: int = 16000


class EnvelopeDialect(Dialect):
    name = "envelope"
    binary_audio = False

    def __init__(
        self,
        *,
        call_id: str,
        session_id: str | None,
        max_text_chars: int,
        now: Callable[[], str] = _utc_now,
    ) -> None:
        super().__init__(call_id=call_id, session_id=session_id, max_text_chars=max_text_chars)
        self.sid = session_id or call_id
        self._now = now
        self._turn: _Turn | None = _Turn("greeting")

    def _msg(self, kind: str, content: Any) -> str:
        return json.dumps(
            {
                "type": kind,
                "content": content,
                "session_id": self.sid,
                "timestamp": self._now(),
                "metadata": None,
            }
        )

    # ------------------------------------------------------------------------------ inbound

    def accepted(self, cmd: Command) -> list[Frame]:
        """Typed text or a base64 utterance starts a turn; the one before it goes out first."""
        if cmd.kind not in ("text", "audio"):
            return []
        out = self._flush()
        self._turn = _Turn(cmd.kind)
        return out

    # ----------------------------------------------------------------------------- outbound

    def render(self, event: ev.Event) -> list[Frame]:
        if isinstance(event, ev.Connected):
            return [
                self._msg(
                    "system",
                    {
                        "message": "Connected",
                        "session_id": self.sid,
                        "call_id": event.call_id,
                        "audio_config": audio_config(event.audio_config),
                    },
                )
            ]
        if isinstance(event, ev.Pong):
            return [self._msg("status", {"status": "pong"})]
        if isinstance(event, ev.Heartbeat):
            return [self._msg("heartbeat", {})]
        if isinstance(event, ev.Error):
            content = {"error": event.message, "code": event.code, "status": status_of(event.code)}
            return [self._msg("error", content)]
        if isinstance(event, ev.Transcript):
            return self._transcript(event)
        turn = self._turn
        if isinstance(event, ev.Intent):
            if turn is not None:
                turn.intent, turn.confidence = event.name or "unknown", event.confidence
            return []
        if isinstance(event, ev.Response):
            if turn is None:
                return []
            turn.text = event.text
            return self._flush() if turn.kind == "text" else []
        if isinstance(event, ev.Status):
            return self._status(event)
        return []  # deltas, partials, metrics, flow notes: not for this client

    def audio(self, frame: bytes, audio: ev.AudioConfig) -> list[Frame]:
        turn = self._turn
        if turn is None or turn.kind == "text" or not turn.speaking:
            return []
        if len(turn.audio) < MAX_REPLY_S * audio.sample_rate * 2:
            turn.audio += pcm_codec.decode(frame, audio.encoding)
            turn.rate = audio.sample_rate
        return []

    def _transcript(self, event: ev.Transcript) -> list[Frame]:
        if not event.final:
            return []
        out: list[Frame] = []
        if self._turn is None or self._turn.text is not None or self._turn.kind == "greeting":
            out = self._flush()
            self._turn = _Turn("audio")
        self._turn.transcription = event.text
        self._turn.stt_confidence = event.confidence
        return out

    def _status(self, event: ev.Status) -> list[Frame]:
        turn = self._turn
        if event.state == "processing" and turn is not None:
            turn.processing = True
        if event.state == "speaking" and turn is not None:
            turn.speaking = True
        if event.state in ("listening", "interrupted", "ended") and turn is not None:
            if turn.text is not None:
                return self._flush() + self._ended(event)
            if turn.kind == "audio" and turn.processing and event.state == "listening":
                # nothing was heard in the caller's audio: that client's server said so
                self._turn = None
                return [self._msg("response", {"error": "Could not transcribe audio", "text": ""})]
        return self._ended(event)

    def _ended(self, event: ev.Status) -> list[Frame]:
        if event.state != "ended":
            return []
        return [self._msg("status", {"status": "ended", "reason": event.reason})]

    def _flush(self) -> list[Frame]:
        turn, self._turn = self._turn, None
        if turn is None or turn.text is None:
            return []
        content: dict[str, Any] = {
            "text": turn.text,
            "intent": turn.intent,
            "confidence": turn.confidence,
        }
        if turn.kind != "text":
            content["transcription"] = turn.transcription
            content["stt_confidence"] = turn.stt_confidence
        if turn.audio:
            content["audio"] = base64.b64encode(wav.wrap(bytes(turn.audio), turn.rate)).decode()
            return [self._msg("audio_response", content)]
        return [self._msg("response", content)]
