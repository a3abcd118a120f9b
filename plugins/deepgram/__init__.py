"""Deepgram: live STT over WebSocket (`stt`) and Aura TTS (`tts`), one SDK client (`client`).

Registered through the `voicebot` entry point `deepgram`, like any third-party plugin."""

from __future__ import annotations

from typing import Any

from voicebot.hookspecs import hookimpl

from .stt import DeepgramSTT
from .tts import DeepgramTTS

__all__ = ["DeepgramSTT", "DeepgramTTS"]


@hookimpl
def register_stt(register: Any) -> None:
    register(DeepgramSTT)


@hookimpl
def register_tts(register: Any) -> None:
    register(DeepgramTTS)
