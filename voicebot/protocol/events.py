"""The typed vocabulary of everything a call (or its connection) tells its caller.

A call emits these and never a wire format; each transport hands them to a dialect
(`voicebot.protocol.dialect`) that renders them for its clients, or to one that renders nothing
(a phone line has no side channel). Frozen, so one event can go to several renderers and hooks
without anyone changing it on the way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AudioConfig:
    """The audio both directions use, as announced to the client."""

    sample_rate: int
    encoding: str
    frame_size_ms: int = 20
    output: str | None = None  # what the client receives: pcm, wav, mp3, webm
    mime_type: str | None = None


@dataclass(frozen=True)
class Connected:
    """The first thing a client hears: which call and session it is on, and its audio."""

    call_id: str
    session_id: str | None
    resumed: bool
    audio_config: AudioConfig


@dataclass(frozen=True)
class Status:
    """The call's state changed (connected, listening, processing, speaking, interrupted,
    paused, ended), or a client message asked for it. `reason` says why a call ended;
    `said`/`heard` what a barge-in cut off; `audio_config` answers a `config` message."""

    state: str
    call_id: str
    reason: str | None = None
    said: str | None = None
    heard: str | None = None
    audio_config: AudioConfig | None = None


@dataclass(frozen=True)
class Transcript:
    text: str
    final: bool
    confidence: float | None


@dataclass(frozen=True)
class ResponseDelta:
    """A piece of the bot's reply as it is produced (sentence or token stream)."""

    text: str


@dataclass(frozen=True)
class Response:
    """The bot's whole reply for one turn, once."""

    text: str


@dataclass(frozen=True)
class Intent:
    name: str | None
    confidence: float
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Transfer:
    target: str
    mode: str


@dataclass(frozen=True)
class Note:
    """A flow's own event (`voicebot.dialogue.Note`): node, slots... its kind is its type."""

    kind: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Metrics:
    """One turn's latency breakdown in ms (`TurnTimes.breakdown()`)."""

    turn: int
    figures: Mapping[str, float | None]


@dataclass(frozen=True)
class Error:
    """Something the client or a provider did wrong; `code` is stable (`errors.STATUS`)."""

    code: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)  # e.g. `detected` container


@dataclass(frozen=True)
class Pong:
    pass


@dataclass(frozen=True)
class Heartbeat:
    pass


@dataclass(frozen=True)
class AuthOk:
    """A token refreshed mid-call was accepted."""

    expires_at: float | None


Event = (
    Connected
    | Status
    | Transcript
    | ResponseDelta
    | Response
    | Intent
    | Transfer
    | Note
    | Metrics
    | Error
    | Pong
    | Heartbeat
    | AuthOk
)
