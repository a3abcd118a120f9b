"""Every event a call sends its caller, built in one place.

Today these are the browser protocol's JSON objects (`docs/protocol.md`), byte for byte, and the
telephony transport drops them. Keeping their construction here is the seam where a protocol
layer can later render neutral call events per wire dialect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Event = dict[str, Any]


def status(state: str, **extra: Any) -> Event:
    return {"type": "status", "status": state, "state": state, **extra}


def error(code: str, message: str) -> Event:
    return {"type": "error", "code": code, "message": message}


def transcript(text: str, final: bool, confidence: float | None) -> Event:
    return {
        "type": "transcript",
        "text": text,
        "final": final,
        "is_final": final,
        "confidence": confidence,
    }


def response(text: str, final: bool) -> Event:
    return {"type": "response", "text": text, "final": final}


def intent(name: str | None, confidence: float, parameters: dict[str, Any]) -> Event:
    return {"type": "intent", "intent": name, "confidence": confidence, "parameters": parameters}


def transfer(target: str, mode: str) -> Event:
    return {"type": "transfer", "target": target, "mode": mode}


def note(kind: str, data: dict[str, Any]) -> Event:
    """A flow's own event (`Note`): its kind is the type."""
    return {"type": kind, **data}


def metrics(turn: int, **figures: float | None) -> Event:
    """One turn's latency breakdown (also what `turn_completed` hooks and /metrics get)."""
    return {"type": "metrics", "turn": turn, **figures}


@dataclass
class TurnTimes:
    """When each stage of one turn happened (loop time), for its `metrics` event."""

    n: int
    speech_end: float | None = None  # last speech frame (or the end_turn / text arrival)
    turn_end: float | None = None  # turn decided (hangover elapsed)
    stt_final: float | None = None
    first_text: float | None = None
    first_tts: float | None = None
    first_audio: float | None = None

    def breakdown(self) -> Event:
        def ms(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round((b - a) * 1000, 1)

        start = self.speech_end
        return metrics(
            self.n,
            endpointing_ms=ms(start, self.turn_end),
            stt_ms=ms(self.turn_end, self.stt_final),
            llm_first_token_ms=ms(self.stt_final, self.first_text),
            tts_first_byte_ms=ms(self.first_text, self.first_tts),
            first_audio_ms=ms(self.first_tts, self.first_audio),
            voice_to_voice_ms=ms(start, self.first_audio),
        )
