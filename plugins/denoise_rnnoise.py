"""Denoiser `rnnoise`: Xiph's RNNoise (a small recurrent network over 22 spectral bands).

The library and its built-in model ship compiled inside the `pyrnnoise` wheel (librnnoise.so,
no download); its Python helpers are only used to load it. RNNoise works on 480-sample frames at
48 kHz, so each call's stream resamples its frames up to 48 kHz and back with the project's
stateful resamplers, cuts them into 480-sample frames (a 10/20/30 ms frame at any rate is a whole
number of them), and keeps one RNNoise state: nothing is shared between calls.

It costs 1-2 ms of CPU per 10 ms of audio (the model is generic C, no SIMD), far too much
for the event loop: `voicebot.call.denoise` runs it in a worker thread, batched.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib
import weakref
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from voicebot.audio import Resampler
from voicebot.config.extras import install_extra
from voicebot.hookspecs import hookimpl
from voicebot.providers import Denoiser, DenoiserStream, ModelMissingError, ProviderError

MODEL_RATE = 48000
FRAME = 480  # samples per RNNoise frame at 48 kHz: 10 ms
#: how late RNNoise's output is behind its input, measured (cross-correlation of a speech clip):
#: one frame buffered plus one of overlap-add
RNNOISE_DELAY_MS = 20.0
#: the resamplers' group delay each way (voicebot.audio's windowed-sinc FIR: 16 zero crossings)
FIR_ZERO_CROSSINGS = 16


@hookimpl
def register_denoise(register: Callable[..., None]) -> None:
    register(RNNoiseDenoiser)


class RNNoiseDenoiser(Denoiser):
    name = "rnnoise"
    requires = ("pyrnnoise",)
    install = install_extra("denoise")

    async def start(self) -> None:
        try:
            # importing pyrnnoise takes ~1 s (it imports its file-processing helpers too)
            self._lib: Any = await asyncio.to_thread(_load_library)
        except ImportError as exc:
            raise ModelMissingError(
                f"the rnnoise denoiser needs the pyrnnoise package: {self.install}",
                provider=self.name,
            ) from exc

    def stream(self, sample_rate: int) -> DenoiserStream:
        return RNNoiseStream(self._lib, sample_rate)


def _load_library() -> Any:
    rnnoise = importlib.import_module("pyrnnoise.rnnoise")
    if rnnoise.FRAME_SIZE != FRAME:
        raise ModelMissingError(
            f"pyrnnoise's RNNoise uses {rnnoise.FRAME_SIZE}-sample frames; this plugin expects "
            f"{FRAME}",
            provider="rnnoise",
        )
    return rnnoise


class RNNoiseStream(DenoiserStream):
    def __init__(self, rnnoise: Any, sample_rate: int) -> None:
        self._process_frame = rnnoise.lib.rnnoise_process_frame
        self._state = rnnoise.create()
        # freed when the stream is, even if a worker thread still held it after the call ended
        weakref.finalize(self, rnnoise.destroy, self._state)
        self._rate = sample_rate
        resample = sample_rate != MODEL_RATE
        self._up = Resampler(sample_rate, MODEL_RATE) if resample else None
        self._down = Resampler(MODEL_RATE, sample_rate) if resample else None
        self._rest = np.zeros(0, dtype=np.float32)  # 48 kHz samples short of a whole frame
        self._out = bytearray()  # cleaned audio at the stream's rate, not yet handed back
        self._late = 0  # bytes of silence handed back before the first cleaned audio

    @property
    def delay_ms(self) -> float:
        resampling = 0.0
        ratio = Fraction(MODEL_RATE, self._rate)
        width = max(ratio.numerator, ratio.denominator)
        if self._up is not None and width <= 8:  # soxr's delay (other ratios) is not counted
            resampling = 2 * 1000 * FIR_ZERO_CROSSINGS * width / (self._rate * ratio.numerator)
        return RNNOISE_DELAY_MS + resampling + self._late / 2 * 1000 / self._rate

    def process(self, pcm: bytes) -> bytes:
        if len(pcm) % 2:
            raise ProviderError(
                f"PCM16 frame must have an even number of bytes, got {len(pcm)}",
                provider="rnnoise",
            )
        up = self._up.process(pcm) if self._up is not None else pcm
        x = np.concatenate([self._rest, np.frombuffer(up, dtype="<i2").astype(np.float32)])
        whole = len(x) // FRAME * FRAME
        frames = np.ascontiguousarray(x[:whole]).reshape(-1, FRAME)
        self._rest = x[whole:]
        float_p = ctypes.POINTER(ctypes.c_float)
        for frame in frames:  # one C call per 10 ms: RNNoise's API takes one frame at a time
            ptr = frame.ctypes.data_as(float_p)
            self._process_frame(self._state, ptr, ptr)
        clean = np.clip(frames.ravel(), -32768, 32767).astype("<i2").tobytes()
        if self._down is not None:
            clean = self._down.process(clean)
        self._out += clean
        return self._take(pcm)

    def _take(self, pcm: bytes) -> bytes:
        """Exactly len(pcm) bytes: silence first while the resamplers and RNNoise fill up,
        then cleaned audio late by that much, for good."""
        n = len(pcm)
        if len(self._out) >= n:
            out = bytes(self._out[:n])
            del self._out[:n]
        else:
            short = n - len(self._out)
            self._late += short
            out = bytes(short) + bytes(self._out)
            self._out.clear()
        return out
