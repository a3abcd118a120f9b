"""A test plugin whose providers need a module that is not installed: how `voicebot check`,
`run` and `plugins` treat a cloud provider whose extra is missing, without uninstalling one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from voicebot.config.extras import install_extra
from voicebot.hookspecs import hookimpl
from voicebot.providers import LLM, TTS, AudioChunk, AudioFormat

MISSING = "voicebot_test_sdk_that_is_not_installed"


class FutureLLM(LLM):
    """Declares what it needs, so `voicebot check` finds the gap."""

    name = "futurellm"
    requires = (MISSING,)
    install = install_extra("cloud")

    async def start(self) -> None:
        __import__(MISSING)

    async def stream(
        self, messages: Sequence[Any], tools: Sequence[Any] = ()
    ) -> AsyncIterator[Any]:
        yield ""  # pragma: no cover - never started


class UndeclaredTTS(TTS):
    """Does not declare it: only `start()` finds out, which `voicebot run` must say in a line."""

    name = "undeclared"

    async def start(self) -> None:
        __import__(MISSING)

    async def synthesize(self, text: str, preferred: AudioFormat) -> AsyncIterator[AudioChunk]:
        yield AudioChunk(b"", preferred.sample_rate)  # pragma: no cover - never started


@hookimpl
def register_llm(register):
    register(FutureLLM)


@hookimpl
def register_tts(register):
    register(UndeclaredTTS)
