"""A dialect: one wire format for the browser door, sans I/O.

The door feeds it what the client sent (`parse`) and what the call emitted (`render`, `audio`),
and sends whatever frames it returns; a dialect never touches a socket or a clock of the event
loop. Keeping per-connection state here (the envelope dialect gathers a turn into one message)
keeps the door a thin shell, as python-websockets and h11 keep theirs.

`VoicebotDialect` is today's protocol (docs/protocol.md), rendered byte for byte as before.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

from . import events as ev
from .commands import Command, ProtocolError, parse_message
from .errors import status_of

#: What a dialect asks the door to send: text frames (JSON) and binary frames (audio).
Frame = str | bytes


class Dialect(ABC):
    """One connection's wire format. Created once the call exists (it knows its ids)."""

    name: str
    #: whether bot audio goes out as binary frames (an encoder may shape them: `?output=`)
    binary_audio = True

    def __init__(self, *, call_id: str, session_id: str | None, max_text_chars: int) -> None:
        self.call_id = call_id
        self.session_id = session_id
        self.max_text_chars = max_text_chars

    def parse(self, text: str) -> Command:
        """A client's JSON message as a command; raises `ProtocolError` (with its code)."""
        return parse_message(text, self.max_text_chars)

    def accepted(self, cmd: Command) -> list[Frame]:
        """The door is about to act on `cmd`: what to send first (a dialect that gathers a turn
        may have one to finish)."""
        return []

    @abstractmethod
    def render(self, event: ev.Event) -> list[Frame]:
        """What to send the client for one event (nothing is a valid answer)."""

    @abstractmethod
    def audio(self, frame: bytes, audio: ev.AudioConfig) -> list[Frame]:
        """What to send for one frame of the bot's speech, in `audio`'s format."""

    def error(self, exc: ProtocolError) -> list[Frame]:
        return self.render(ev.Error(exc.code, str(exc)))


def _json(obj: dict[str, Any]) -> str:
    return json.dumps(obj)


def audio_config(a: ev.AudioConfig) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sample_rate": a.sample_rate,
        "encoding": a.encoding,
        "frame_size_ms": a.frame_size_ms,
    }
    if a.output is not None:
        out.update(output=a.output, mime_type=a.mime_type)
    return out


def voicebot_object(event: ev.Event) -> dict[str, Any]:
    """An event as today's `/ws/voice` JSON object (also what `/api/*` errors look like)."""
    if isinstance(event, ev.Status):
        out: dict[str, Any] = {
            "type": "status",
            "status": event.state,
            "state": event.state,
            "call_id": event.call_id,
        }
        for key in ("reason", "said", "heard"):
            value = getattr(event, key)
            if value is not None:
                out[key] = value
        if event.audio_config is not None:
            out["audio_config"] = audio_config(event.audio_config)
        return out
    if isinstance(event, ev.Transcript):
        return {
            "type": "transcript",
            "text": event.text,
            "final": event.final,
            "is_final": event.final,
            "confidence": event.confidence,
        }
    if isinstance(event, ev.ResponseDelta):
        return {"type": "response_delta", "text": event.text}
    if isinstance(event, ev.Response):
        return {"type": "response", "text": event.text, "final": True}
    if isinstance(event, ev.Intent):
        return {
            "type": "intent",
            "intent": event.name,
            "confidence": event.confidence,
            "parameters": dict(event.parameters),
        }
    if isinstance(event, ev.Metrics):
        return {"type": "metrics", "turn": event.turn, **event.figures}
    if isinstance(event, ev.Error):
        return {
            "type": "error",
            "code": event.code,
            "status": status_of(event.code),
            "message": event.message,
            **event.details,
        }
    if isinstance(event, ev.Connected):
        return {
            "type": "status",
            "status": "connected",
            "state": "connected",
            "session_id": event.session_id,
            "call_id": event.call_id,
            "resumed": event.resumed,
            "audio_config": audio_config(event.audio_config),
        }
    if isinstance(event, ev.Transfer):
        return {"type": "transfer", "target": event.target, "mode": event.mode}
    if isinstance(event, ev.Note):
        return {"type": event.kind, **event.data}
    if isinstance(event, ev.Pong):
        return {"type": "pong"}
    if isinstance(event, ev.Heartbeat):
        return {"type": "heartbeat"}
    if isinstance(event, ev.AuthOk):
        return {"type": "auth", "status": "ok", "expires_at": event.expires_at}
    raise TypeError(f"not a call event: {event!r}")


class VoicebotDialect(Dialect):
    """Binary audio both ways, one JSON object per event (docs/protocol.md)."""

    name = "voicebot"

    def render(self, event: ev.Event) -> list[Frame]:
        return [_json(voicebot_object(event))]

    def audio(self, frame: bytes, audio: ev.AudioConfig) -> list[Frame]:
        return [frame]


class Silent:
    """For transports with no side channel (a phone line): every event renders to nothing. The
    call's hooks still see what happened; the carrier's serializer speaks the media stream."""

    name = "silent"

    def render(self, event: ev.Event) -> list[str]:
        return []
