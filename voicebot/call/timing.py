"""When each stage of a turn happened, for its latency breakdown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..protocol.events import Metrics


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

    def breakdown(self) -> dict[str, Any]:
        """What `turn_completed` hooks and the process's metrics get (a plain dict, as the
        hook has always passed)."""

        def ms(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round((b - a) * 1000, 1)

        start = self.speech_end
        return {
            "type": "metrics",
            "turn": self.n,
            "endpointing_ms": ms(start, self.turn_end),
            "stt_ms": ms(self.turn_end, self.stt_final),
            "llm_first_token_ms": ms(self.stt_final, self.first_text),
            "tts_first_byte_ms": ms(self.first_text, self.first_tts),
            "first_audio_ms": ms(self.first_tts, self.first_audio),
            "voice_to_voice_ms": ms(start, self.first_audio),
        }


def metrics_event(turn: dict[str, Any]) -> Metrics:
    figures = {k: v for k, v in turn.items() if k not in ("type", "turn")}
    return Metrics(turn["turn"], figures)
