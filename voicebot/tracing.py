"""Optional OpenTelemetry traces: one span per turn, with a child span per stage.

Off by default (`server.otel_traces`); needs the `[otel]` extra. Spans go to the global tracer
provider, so exporters are set up the OpenTelemetry way (`opentelemetry-instrument`, the `OTEL_*`
environment variables, or a plugin that installs a provider). Spans are built when the turn's
first reply frame goes out, from the breakdown the call already measured: tracing adds no work
to the audio path while a turn is in flight.
"""

from __future__ import annotations

from typing import Any

from .plugins import PluginError

#: the turn's stages in order, as (span name, breakdown field in ms); they follow each other
STAGES = (
    ("endpointing", "endpointing_ms"),
    ("stt", "stt_ms"),
    ("llm_first_token", "llm_first_token_ms"),
    ("tts_first_byte", "tts_first_byte_ms"),
    ("first_audio", "first_audio_ms"),
)


class TracingUnavailable(PluginError):
    """`server.otel_traces` is on but the OpenTelemetry API is not installed: what the
    environment lacks, said in one line like a missing provider SDK."""


def make_tracer() -> Any:
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise TracingUnavailable(
            "server.otel_traces needs OpenTelemetry: pip install 'voicebot-runtime[otel]'"
        ) from exc
    from . import __version__

    return trace.get_tracer("voicebot", __version__)


def turn_spans(tracer: Any, call: Any, turn: dict[str, Any], end_ns: int) -> None:
    """Record one turn ending at `end_ns` (wall clock): the stages laid end to end before it."""
    known = [(name, turn.get(field)) for name, field in STAGES]
    total_ms = turn.get("voice_to_voice_ms") or sum(ms for _, ms in known if ms is not None)
    start_ns = end_ns - int(total_ms * 1e6)
    attributes = {"voicebot.call_id": call.id, "voicebot.transport": call.transport}
    turn_span = tracer.start_span(
        "turn", start_time=start_ns, attributes={**attributes, "voicebot.turn": turn.get("turn")}
    )
    try:
        from opentelemetry import trace

        context = trace.set_span_in_context(turn_span)
        at = start_ns
        for name, ms in known:
            if ms is None:
                continue  # a typed turn has no endpointing, a cached reply no TTS stage...
            span = tracer.start_span(name, context=context, start_time=at, attributes=attributes)
            at = min(at + int(ms * 1e6), end_ns)  # stages are rounded to 0.1 ms each
            span.end(end_time=at)
    finally:
        turn_span.end(end_time=end_ns)
