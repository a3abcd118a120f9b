"""The provider interfaces every STT, TTS, LLM, VAD and intent plugin implements.

A provider class is registered once (see `hookspecs`), instantiated once per process per configured
role with its validated options, and shared by every call. Per-call state lives in the streams it
hands out (`STT.stream()`, `VAD.stream()`), never on the provider itself: that is what lets one
process hold hundreds of calls with one copy of each model.

Audio crossing these interfaces is always mono PCM16 little-endian bytes; the sample rate travels
with it. Everything is async and streaming-first so a slow provider never blocks the event loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

# re-exported: plugin authors import these from here
from ..audio.types import AudioFormat as AudioFormat
from .errors import ModelMissingError as ModelMissingError
from .errors import ProviderError as ProviderError

if TYPE_CHECKING:
    from .workers import WorkerPool


@dataclass
class NoOptions:
    """Options schema of a provider that takes none."""


class Provider(ABC):
    """Common shape of every provider class.

    `name` is what `use:` selects in config.yaml. `Options` is a dataclass whose fields are the
    provider's config keys; the config loader validates user input against it (types, unknown keys
    with did-you-mean, required fields) and reports errors with file and line before a call starts.
    """

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    #: Top-level modules `start()` imports (an SDK, a model package). `voicebot check` and
    #: `voicebot plugins` look for them without importing, so a missing one is reported with
    #: `install` before any call instead of as an ImportError when the server starts.
    requires: ClassVar[tuple[str, ...]] = ()
    #: The command that installs `requires` (see `voicebot.config.extras.install_extra`); empty
    #: means "pip install" followed by the missing module names.
    install: ClassVar[str] = ""

    #: Set by the runtime before `start()`: the process-wide pool for CPU-heavy work. Run
    #: inference with `await self.workers.run(fn, *args)`, never on the event loop.
    workers: WorkerPool

    def __init__(self, options: Any = None, workers: WorkerPool | None = None) -> None:
        from .workers import WorkerPool

        self.options = options if options is not None else self.Options()
        self.workers = workers if workers is not None else WorkerPool()

    @classmethod
    def check_options(cls, options: Any) -> dict[str, str]:
        """Problems the options alone show `start()` would fail on (an empty API key), by option
        name: `voicebot check` reports each at its line in config.yaml before any call."""
        return {}

    async def start(self) -> None:
        """Load models / open connection pools. Called once per process before the first call."""

    async def aclose(self) -> None:
        """Release process-wide resources on shutdown."""

    def health(self) -> dict[str, Any]:
        """A small JSON-able status for `GET /health`."""
        return {"name": self.name, "status": "ok"}


# --------------------------------------------------------------------------------------------- VAD


class VADStream(ABC):
    """Per-call voice activity detector: stateful, fed every inbound frame in order."""

    @abstractmethod
    def process(self, pcm: bytes) -> float:
        """Speech probability (0..1) of one frame (20 ms at the pipeline rate). Must be cheap."""

    def reset(self) -> None:
        """Forget history, e.g. after the bot's own speech ended."""


class VAD(Provider):
    threshold: ClassVar[float] = 0.5
    #: rates the detector works at without resampling. A phone call (8 kHz) is then judged at its
    #: own rate and only the frames STT hears are resampled, which saves most of the per-frame
    #: work on a line that is mostly silent or the bot talking.
    native_rates: ClassVar[tuple[int, ...]] = ()

    def supports_rate(self, rate: int) -> bool:
        return rate in self.native_rates

    @abstractmethod
    def stream(self, sample_rate: int) -> VADStream:
        """A fresh detector for one call."""


# ---------------------------------------------------------------------------------------- denoise


class DenoiserStream(ABC):
    """Per-call noise suppressor: stateful, fed every inbound frame in order.

    `process` runs in a worker thread (the call's frames go through one job at a time, in order),
    so it may take a millisecond without stalling anyone's audio; it must not be shared by calls.
    """

    @abstractmethod
    def process(self, pcm: bytes) -> bytes:
        """The cleaned audio: exactly as many bytes as `pcm`, so the frames after it keep their
        timing. A suppressor that needs look-ahead returns silence first and is late by a fixed
        amount from then on (`delay_ms`)."""

    @property
    def delay_ms(self) -> float:
        """How late the cleaned audio is behind what went in, in ms (0 until known)."""
        return 0.0


class Denoiser(Provider):
    """Noise suppression before the VAD and STT (`providers.denoise`; off unless configured).

    Calls run their streams in `frame_pool`, worker threads of the denoiser's own: behind a
    Whisper decode in the shared inference pool, a 20 ms frame would wait seconds.
    """

    #: jobs waiting for a frame worker; a call has at most one out, so this is never reached
    #: below this many simultaneous calls
    FRAME_POOL_QUEUE: ClassVar[int] = 4096
    _frame_pool: WorkerPool | None = None

    @property
    def frame_pool(self) -> WorkerPool:
        if self._frame_pool is None:
            from .workers import WorkerPool

            self._frame_pool = WorkerPool(max_queue=self.FRAME_POOL_QUEUE)
        return self._frame_pool

    async def aclose(self) -> None:
        """Stops the frame workers: a subclass that overrides this calls it too."""
        if self._frame_pool is not None:
            self._frame_pool.shutdown()

    @abstractmethod
    def stream(self, sample_rate: int) -> DenoiserStream:
        """A fresh suppressor for one call, at the rate its frames come in (8000 to 48000)."""


# --------------------------------------------------------------------------------------------- STT


@dataclass(frozen=True)
class Transcript:
    text: str
    final: bool
    confidence: float | None = None
    language: str | None = None


@dataclass(frozen=True)
class SpeechStarted:
    """Provider-side endpointing: the recogniser heard speech begin."""


@dataclass(frozen=True)
class UtteranceEnd:
    """Provider-side endpointing: the recogniser decided the utterance is over."""


STTEvent = Transcript | SpeechStarted | UtteranceEnd


class STTStream(ABC):
    """Per-call recogniser.

    The runtime `send()`s the caller's audio while the caller speaks (VAD-gated, with a short
    pre-roll) and calls `finalize()` at the end of the turn, which returns the final transcript of
    everything sent since the previous `finalize()`/`cancel()`. Partials and provider endpointing
    go to `on_event`, which the runtime sets before the first `send()`.

    Streams whose provider sets `STT.endpointing = True` receive all inbound audio instead and may
    emit `UtteranceEnd` to end the turn themselves.
    """

    on_event: Callable[[STTEvent], None] | None = None

    @abstractmethod
    async def send(self, pcm: bytes) -> None: ...

    @abstractmethod
    async def finalize(self) -> Transcript: ...

    async def speculate(self) -> None:
        """The caller just went quiet (VAD hangover started): a batch engine may start decoding
        now and reuse the result if `finalize()` follows with no new audio."""

    async def cancel(self) -> None:
        """Discard the current utterance (a false start)."""

    async def aclose(self) -> None:
        """The call is over: release connections and buffers."""

    def emit(self, event: STTEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)


class STT(Provider):
    endpointing: ClassVar[bool] = False

    @abstractmethod
    def stream(self, sample_rate: int, *, language: str | None = None) -> STTStream:
        """A fresh recogniser for one call."""


class BatchSTT(STT):
    """Adapts a whole-utterance engine to the streaming interface by buffering the utterance.

    Subclasses implement `transcribe()`; `max_seconds` bounds the buffer so a caller who never
    stops talking cannot grow memory without limit.
    """

    max_seconds: ClassVar[float] = 30.0

    @abstractmethod
    async def transcribe(self, pcm: bytes, sample_rate: int) -> Transcript: ...

    def stream(self, sample_rate: int, *, language: str | None = None) -> STTStream:
        return BufferedSTTStream(self, sample_rate)


class BufferedSTTStream(STTStream):
    def __init__(self, engine: BatchSTT, sample_rate: int) -> None:
        self._engine = engine
        self._rate = sample_rate
        self._buf = bytearray()
        self._limit = int(engine.max_seconds * sample_rate) * 2
        self._speculative: tuple[int, Any] | None = None  # (buffer length, task)

    async def send(self, pcm: bytes) -> None:
        room = self._limit - len(self._buf)
        if room > 0:
            self._buf += pcm[:room]

    async def speculate(self) -> None:
        import asyncio

        if self._buf and (self._speculative is None or self._speculative[0] != len(self._buf)):
            self._drop_speculative()
            task = asyncio.ensure_future(self._engine.transcribe(bytes(self._buf), self._rate))
            self._speculative = (len(self._buf), task)

    async def finalize(self) -> Transcript:
        audio, self._buf = bytes(self._buf), bytearray()
        spec, self._speculative = self._speculative, None
        if not audio:
            self._cancel_task(spec)
            return Transcript("", final=True, confidence=0.0)
        if spec is not None and spec[0] == len(audio):
            return await spec[1]
        self._cancel_task(spec)
        return await self._engine.transcribe(audio, self._rate)

    async def cancel(self) -> None:
        self._buf = bytearray()
        self._drop_speculative()

    async def aclose(self) -> None:
        await self.cancel()

    def _drop_speculative(self) -> None:
        self._cancel_task(self._speculative)
        self._speculative = None

    @staticmethod
    def _cancel_task(spec: tuple[int, Any] | None) -> None:
        if spec is not None and not spec[1].done():
            spec[1].cancel()


# --------------------------------------------------------------------------------------------- TTS


@dataclass(frozen=True)
class AudioChunk:
    data: bytes
    sample_rate: int
    encoding: Literal["pcm_s16le", "mulaw", "alaw"] = "pcm_s16le"


class TTS(Provider):
    """Text in, audio chunks out as soon as they exist.

    `preferred` is the format the call will send to its caller (e.g. μ-law 8 kHz on a phone line);
    a provider that can produce it natively should, saving a resample, but any format is accepted.
    Cancelling the iterator (barge-in) must stop upstream work.
    """

    @abstractmethod
    def synthesize(self, text: str, preferred: AudioFormat) -> AsyncIterator[AudioChunk]: ...


# --------------------------------------------------------------------------------------------- LLM


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Message:
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True)
class Usage:
    """Billable usage, reported through the `usage` lifecycle hook."""

    provider: str
    input_tokens: int = 0
    output_tokens: int = 0
    characters: int = 0
    audio_seconds: float = 0.0


class LLM(Provider):
    @abstractmethod
    def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[str | ToolCall | Usage]:
        """Text deltas as they arrive, complete tool calls, and at most one `Usage` at the end."""


# ------------------------------------------------------------------------------------------ intent


@dataclass(frozen=True)
class IntentSpec:
    name: str
    examples: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class IntentResult:
    name: str | None
    confidence: float
    slots: dict[str, Any] = field(default_factory=dict)


class IntentClassifier(Provider):
    """Chooses among the candidate intents a flow step expects (or says none fits)."""

    @abstractmethod
    async def classify(self, text: str, candidates: Sequence[IntentSpec]) -> IntentResult: ...


ROLES: dict[str, type[Provider]] = {
    "vad": VAD,
    "stt": STT,
    "tts": TTS,
    "llm": LLM,
    "intent": IntentClassifier,
    "denoise": Denoiser,
}
