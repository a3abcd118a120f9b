"""Where providers report billable usage without a per-call object to hang it on.

A TTS provider is shared by every call and `synthesize()` has no per-call stream, so usage cannot
travel as an attribute. Instead the call sets a sink in its context once, at its start; tasks it
creates afterwards (and async generators it iterates) inherit the context, so any provider code
running on behalf of that call reaches the right sink with `report_usage(...)`. Outside a call
(a CLI benchmark, a test) reporting is a no-op.

LLM providers do not use this: they yield `Usage` in their stream, as `LLM.stream` documents.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ..providers import Usage

UsageSink = Callable[[Usage], None]

usage_sink: ContextVar[UsageSink | None] = ContextVar("voicebot_usage_sink", default=None)


def report_usage(usage: Usage) -> None:
    """Hand `usage` to the current call's sink, if any. A failing sink never breaks the audio."""
    sink = usage_sink.get()
    if sink is None:
        return
    try:
        sink(usage)
    except Exception:  # metrics must not take a call down
        import logging

        logging.getLogger("voicebot.usage").exception("usage sink failed")


@contextmanager
def collect_usage(sink: UsageSink) -> Iterator[None]:
    """Route usage reported inside the block (and tasks started inside it) to `sink`."""
    token = usage_sink.set(sink)
    try:
        yield
    finally:
        usage_sink.reset(token)
