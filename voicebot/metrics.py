"""The process's Prometheus metrics, through `prometheus-client` (what `/metrics` serves).

Every metric lives in a registry of the runtime's own, so two servers in one process (tests) never
add up. With `PROMETHEUS_MULTIPROC_DIR` set (as `voicebot run --workers N` does), each worker
writes its values to files there and `/metrics` answers from all of them through the library's
`MultiProcessCollector`: any worker's `/metrics` reports the whole server. A supervisor calls
`mark_process_dead(pid)` when a worker exits so its live gauges stop counting.

Metric names are what `docs/grafana-dashboard.json` queries; `tests/test_metrics.py` checks both.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

from .hookspecs import hookimpl

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: voice-to-voice is a human-scale figure (hundreds of ms to seconds)
V2V_BUCKETS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10)
#: one stage of a turn (STT, first LLM token, first TTS byte)
STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
#: event-loop lag and inference queue wait: healthy is a few ms, trouble is tens to hundreds
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

#: turn breakdown field (ms, see voicebot.call.events) → histogram attribute
TURN_STAGES = {
    "voice_to_voice_ms": "voice_to_voice",
    "stt_ms": "stt_final",
    "llm_first_token_ms": "llm_first_token",
    "tts_first_byte_ms": "tts_first_byte",
}
#: the error codes a call reports when one of its providers failed, by role
PROVIDER_ERROR_CODES = {"stt_failed": "stt", "tts_failed": "tts", "provider_failed": "llm"}
_CALLER_ENDED = {"remote", "closed", "ended", "client disconnected", "client ended the call"}


def multiproc_dir() -> str | None:
    """The shared directory of a multi-worker server, or None for a single process."""
    return os.environ.get(MULTIPROC_ENV) or None


def mark_process_dead(pid: int) -> None:
    """Drop an exited worker's live gauges (active calls, queued jobs) from the aggregate.

    For the supervisor of `voicebot run --workers N`: call it with each worker's pid once that
    worker has exited. Counters and histograms of the dead worker keep counting, as the library
    intends. No-op in a single-process server."""
    path = multiproc_dir()
    if path:
        multiprocess.mark_process_dead(pid, path)


def outcome_of(reason: str) -> str:
    """A call's end reason (free text) → a small fixed set of `outcome` label values."""
    if reason.startswith("bot:"):
        return "bot_hangup"
    if reason in _CALLER_ENDED:
        return "caller_hangup"
    return {"server shutdown": "shutdown", "resumed on a new connection": "resumed"}.get(
        reason, "error" if reason == "error" else "cut_off"
    )


class _Computed:
    """A collector for figures computed when scraped (the cluster's view of Redis)."""

    def __init__(self) -> None:
        self.sources: list[Callable[[], Iterable[Any]]] = []

    def collect(self) -> Iterable[Any]:
        for source in self.sources:
            yield from source()


class Metrics:
    """The metric objects, and the hooks that feed them from calls (registered as a plugin)."""

    def __init__(self, tracer: Any = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._computed = _Computed()
        self.registry.register(self._computed)
        if multiproc_dir() is None:  # per-process figures mean nothing summed over workers
            ProcessCollector(registry=self.registry)
        reg = self.registry

        def hist(name: str, doc: str, buckets: tuple[float, ...], labels=()) -> Histogram:
            return Histogram(name, doc, labels, buckets=buckets, registry=reg)

        self.voice_to_voice = hist(
            "voicebot_voice_to_voice_seconds",
            "Caller's last speech frame to the bot's first reply frame sent",
            V2V_BUCKETS,
            ["transport"],
        )
        self.stt_final = hist(
            "voicebot_stt_final_seconds",
            "Turn decided to the final transcript",
            STAGE_BUCKETS,
            ["transport"],
        )
        self.llm_first_token = hist(
            "voicebot_llm_first_token_seconds",
            "Final transcript to the dialogue's first reply text",
            STAGE_BUCKETS,
            ["transport"],
        )
        self.tts_first_byte = hist(
            "voicebot_tts_first_byte_seconds",
            "First reply text to the first synthesized audio",
            STAGE_BUCKETS,
            ["transport"],
        )
        self.loop_lag = hist(
            "voicebot_event_loop_lag_seconds",
            "How late the event loop woke from a 50 ms sleep",
            LAG_BUCKETS,
        )
        self.queue_wait = hist(
            "voicebot_inference_queue_wait_seconds",
            "Time a job waited for a free inference worker",
            LAG_BUCKETS,
        )
        self.calls = Counter(
            "voicebot_calls",
            "Calls by transport and how they ended (rejected: refused at capacity or draining)",
            ["transport", "outcome"],
            registry=reg,
        )
        self.turns = Counter(
            "voicebot_turns",
            "Caller turns answered (first reply audio sent; the greeting is none)",
            ["transport"],
            registry=reg,
        )
        self.barge_ins = Counter(
            "voicebot_barge_ins",
            "Bot replies cut off by the caller (speech, typed text or a reset)",
            ["transport"],
            registry=reg,
        )
        self.provider_errors = Counter(
            "voicebot_provider_errors",
            "Provider failures a call had to report (after any fallback)",
            ["role"],
            registry=reg,
        )
        self.fallbacks = Counter(
            "voicebot_provider_fallbacks",
            "A fallback chain member failed (the next one, if any, is tried)",
            ["role", "provider"],
            registry=reg,
        )
        self.active_calls = Gauge(
            "voicebot_active_calls",
            "Calls in progress",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.inference_queued = Gauge(
            "voicebot_inference_queued",
            "Jobs waiting for an inference worker",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.tracer = tracer

    # ----------------------------------------------------------------------------- feeding

    def add_source(self, families: Callable[[], Iterable[Any]]) -> None:
        """Metric families another part of the process computes at each scrape."""
        self._computed.sources.append(families)

    def rejected(self, transport: str) -> None:
        self.calls.labels(transport, "rejected").inc()

    def provider_error(self, code: str) -> None:
        role = PROVIDER_ERROR_CODES.get(code)
        if role is not None:
            self.provider_errors.labels(role).inc()

    def fell_back(self, role: str, provider: str) -> None:
        self.fallbacks.labels(role, provider).inc()

    @hookimpl
    def call_ended(self, call: Any, reason: str) -> None:
        self.calls.labels(call.transport, outcome_of(reason)).inc()

    @hookimpl
    def bot_spoke(self, call: Any, text: str, heard: str, interrupted: bool) -> None:
        if interrupted:
            self.barge_ins.labels(call.transport).inc()

    @hookimpl
    def turn_completed(self, call: Any, turn: dict[str, Any]) -> None:
        # called as the turn's first reply frame goes out: now is the end of voice-to-voice
        end_ns = time.time_ns()
        if not turn.get("turn"):
            return  # the greeting answers nobody: no turn, no voice-to-voice
        self.turns.labels(call.transport).inc()
        for field, attr in TURN_STAGES.items():
            ms = turn.get(field)
            if ms is not None:
                getattr(self, attr).labels(call.transport).observe(ms / 1000)
        if self.tracer is not None:
            from .tracing import turn_spans

            turn_spans(self.tracer, call, turn, end_ns)

    # ---------------------------------------------------------------------------- exposing

    def exposition(self) -> tuple[bytes, str]:
        """(body, content type) of `/metrics`: this process's registry, or every worker's."""
        path = multiproc_dir()
        if path is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path)
        merged.register(self._computed)  # this process's own view (not summed)
        return generate_latest(merged), CONTENT_TYPE_LATEST
