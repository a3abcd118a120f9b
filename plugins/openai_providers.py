"""OpenAI LLM, STT and TTS, and through `base_url` every OpenAI-compatible server.

Groq, Ollama, vLLM, the llama.cpp server and LM Studio all speak the same `/v1` routes, so one
plugin serves them: set `base_url` (the API key is then optional). One `AsyncOpenAI` client per
provider instance, i.e. per process and role, keeps its HTTP connections warm across calls.
"""

from __future__ import annotations

import io
import json
import wave
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from voicebot.hookspecs import hookimpl
from voicebot.providers import (
    LLM,
    TTS,
    AudioChunk,
    AudioFormat,
    BatchSTT,
    BufferedSTTStream,
    Message,
    ProviderError,
    STTStream,
    ToolCall,
    ToolSpec,
    Transcript,
    Usage,
)
from voicebot.records.usage import report_usage

from ._cloud import (
    SampleAligner,
    SharedClient,
    audio_body,
    bounded,
    map_error,
    openai_http_client,
    require_key,
)


@dataclass
class _ClientOptions:
    api_key: str = ""
    #: Empty for OpenAI itself; e.g. http://localhost:11434/v1 for Ollama.
    base_url: str = ""
    #: Seconds; applies to connecting and to each read, so a stalled stream fails this fast.
    timeout: float = bounded(30.0, 0.05)
    #: Retries on 408/409/429/5xx and connection errors (with backoff, honouring Retry-After),
    #: always before any output was produced.
    max_retries: int = bounded(2, 0, 10)
    organization: str = ""
    headers: dict[str, Any] = field(default_factory=dict)


class _OpenAIClient(SharedClient):
    """Owns the process-wide `AsyncOpenAI` client of one provider instance."""

    default_url = "https://api.openai.com/v1"
    requires = ("openai",)
    key_env = "OPENAI_API_KEY"
    key_optional_with_base_url = True

    async def start(self) -> None:
        from openai import AsyncOpenAI

        opts = self.options
        require_key(self.name, opts.api_key, self.key_env, needed=self.needs_key())
        self._client = AsyncOpenAI(
            # Local servers ignore the key, but the SDK insists on one.
            api_key=opts.api_key or "not-needed",
            base_url=opts.base_url or None,
            organization=opts.organization or None,
            timeout=opts.timeout,
            max_retries=opts.max_retries,
            default_headers=opts.headers or None,
            # one tuned pool per provider instance, shared by every call of the process
            http_client=openai_http_client(opts.timeout),
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


# --------------------------------------------------------------------------------------------- LLM


@dataclass
class OpenAILLMOptions(_ClientOptions):
    model: str = "gpt-4o-mini"
    temperature: float | None = bounded(None, 0, 2)
    max_tokens: int | None = bounded(None, 1)
    #: Ask for a final usage chunk (stream_options.include_usage). Turn off for a server that
    #: rejects the field.
    stream_usage: bool = True
    #: Extra request fields a compatible server understands (e.g. Ollama's `options`).
    extra_body: dict[str, Any] = field(default_factory=dict)


def _message_dict(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.role == "assistant" and m.tool_calls:
        out["content"] = m.content or None
        out["tool_calls"] = [
            {
                "id": tc.id,
                "type": "function",
                "function": {"name": tc.name, "arguments": json.dumps(tc.arguments)},
            }
            for tc in m.tool_calls
        ]
    if m.role == "tool":
        out["tool_call_id"] = m.tool_call_id or ""
    if m.name and m.role != "tool":
        out["name"] = m.name
    return out


def _tool_dict(t: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
    }


class _ToolCallAssembler:
    """Tool calls arrive as deltas keyed by index: the id and name once, the JSON arguments in
    arbitrary fragments. They are complete only when the stream says so."""

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._parts: dict[int, dict[str, Any]] = {}

    def add(self, delta: dict[str, Any]) -> None:
        part = self._parts.setdefault(delta.get("index", 0), {"id": "", "name": "", "args": []})
        if delta.get("id"):
            part["id"] = delta["id"]
        fn = delta.get("function")
        if fn:
            if fn.get("name"):
                part["name"] += fn["name"]
            if fn.get("arguments"):
                part["args"].append(fn["arguments"])

    def drain(self) -> list[ToolCall]:
        calls = []
        for index in sorted(self._parts):
            part = self._parts[index]
            raw = "".join(part["args"]).strip() or "{}"
            try:
                args = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ProviderError(
                    f"{self._provider}: the model sent malformed JSON arguments for tool "
                    f"'{part['name']}': {raw[:200]!r}",
                    provider=self._provider,
                    retryable=True,
                ) from exc
            if not isinstance(args, dict):
                args = {"value": args}
            calls.append(
                ToolCall(id=part["id"] or f"call_{index}", name=part["name"], arguments=args)
            )
        self._parts.clear()
        return calls


class OpenAILLM(_OpenAIClient, LLM):
    """Chat completions, streamed: text deltas as they arrive, tool calls once assembled."""

    name = "openai"
    Options = OpenAILLMOptions

    async def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[str | ToolCall | Usage]:
        opts: OpenAILLMOptions = self.options
        params: dict[str, Any] = {
            "model": opts.model,
            "messages": [_message_dict(m) for m in messages],
            "stream": True,
        }
        if tools:
            params["tools"] = [_tool_dict(t) for t in tools]
        if opts.stream_usage:
            params["stream_options"] = {"include_usage": True}
        if opts.temperature is not None:
            params["temperature"] = opts.temperature
        if opts.max_tokens is not None:
            params["max_tokens"] = opts.max_tokens
        if opts.extra_body:
            params["extra_body"] = opts.extra_body
        tools_in = _ToolCallAssembler(self.name)
        usage: Usage | None = None
        try:
            async with self.client.chat.completions.with_streaming_response.create(
                **params
            ) as resp:
                async for chunk in _sse_chunks(self.name, resp.iter_lines()):
                    if chunk.get("usage"):
                        usage = Usage(
                            provider=self.name,
                            input_tokens=chunk["usage"].get("prompt_tokens") or 0,
                            output_tokens=chunk["usage"].get("completion_tokens") or 0,
                        )
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta") or {}
                        if delta.get("content"):
                            yield delta["content"]
                        for tc in delta.get("tool_calls") or ():
                            tools_in.add(tc)
                        if choice.get("finish_reason") is not None:
                            for call in tools_in.drain():
                                yield call
        except ProviderError:
            raise
        except Exception as exc:
            raise map_error(self.name, exc) from exc
        for call in tools_in.drain():  # a server that never sent finish_reason
            yield call
        if usage is not None:
            yield usage


async def _sse_chunks(provider: str, lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    """The JSON chunks of a chat-completions event stream, as plain dicts.

    The SDK's own stream builds a pydantic model per chunk (a token, ~30 a second per speaking
    call); the raw response (`with_streaming_response`) and one orjson parse cost a fraction of
    that. An `error` event mid-stream is a provider error, as the SDK treats it."""
    async for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, comments, `event:` lines
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            chunk = _json_loads(data)
        except ValueError as exc:
            raise ProviderError(
                f"{provider}: the server sent a stream event that is not JSON: {data[:80]!r}",
                provider=provider,
                retryable=True,
            ) from exc
        if not isinstance(chunk, dict):
            continue
        if chunk.get("error"):
            err = chunk["error"]
            message = err.get("message", "") if isinstance(err, dict) else str(err)
            raise ProviderError(
                f"{provider}: the server failed mid-stream: {message[:200]}",
                provider=provider,
                retryable=True,
            )
        yield chunk


try:
    from orjson import loads as _json_loads
except ImportError:  # orjson is a dependency; this keeps an environment built before it working
    _json_loads = json.loads


# --------------------------------------------------------------------------------------------- STT


@dataclass
class OpenAISTTOptions(_ClientOptions):
    #: whisper-1, gpt-4o-transcribe, gpt-4o-mini-transcribe; on Groq whisper-large-v3(-turbo).
    model: str = "whisper-1"
    #: ISO-639-1 code; empty lets the model detect it. A call's own language wins.
    language: str = ""
    #: Vocabulary and spelling hints (names, products).
    prompt: str = ""
    temperature: float | None = bounded(None, 0, 1)
    #: Start transcribing as soon as the caller pauses, saving the round trip when the pause
    #: was the end of the turn. A pause that was not costs one extra (billed) request.
    speculate: bool = True


def pcm_to_wav(pcm: bytes, sample_rate: int) -> bytes:
    """The transcription endpoint wants a file; this one never touches the disk."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buf.getvalue()


class _LanguageBound:
    """What `BufferedSTTStream` needs from its engine, with the call's language fixed."""

    def __init__(self, engine: OpenAISTT, language: str | None) -> None:
        self.max_seconds = engine.max_seconds
        self._engine = engine
        self._language = language

    async def transcribe(self, pcm: bytes, sample_rate: int) -> Transcript:
        return await self._engine.transcribe(pcm, sample_rate, language=self._language)


class _NoSpeculation(BufferedSTTStream):
    async def speculate(self) -> None:
        """Transcribe only at the end of the turn: one request per utterance."""


class OpenAISTT(_OpenAIClient, BatchSTT):
    """Whole-utterance transcription (`/v1/audio/transcriptions`)."""

    name = "openai"
    Options = OpenAISTTOptions

    def stream(self, sample_rate: int, *, language: str | None = None) -> STTStream:
        cls = BufferedSTTStream if self.options.speculate else _NoSpeculation
        return cls(_LanguageBound(self, language), sample_rate)  # type: ignore[arg-type]

    async def transcribe(
        self, pcm: bytes, sample_rate: int, *, language: str | None = None
    ) -> Transcript:
        opts: OpenAISTTOptions = self.options
        lang = (language or opts.language or "").split("-")[0]
        params: dict[str, Any] = {
            "model": opts.model,
            "file": ("utterance.wav", pcm_to_wav(pcm, sample_rate), "audio/wav"),
            "response_format": "json",
        }
        if lang:
            params["language"] = lang
        if opts.prompt:
            params["prompt"] = opts.prompt
        if opts.temperature is not None:
            params["temperature"] = opts.temperature
        try:
            result = await self.client.audio.transcriptions.create(**params)
        except Exception as exc:
            raise map_error(self.name, exc) from exc
        report_usage(Usage(provider=self.name, audio_seconds=len(pcm) / 2 / sample_rate))
        return Transcript(text=(result.text or "").strip(), final=True, language=lang or None)


# --------------------------------------------------------------------------------------------- TTS


@dataclass
class OpenAITTSOptions(_ClientOptions):
    model: str = "gpt-4o-mini-tts"
    voice: str = "alloy"
    #: Tone and style instructions (gpt-4o-mini-tts only).
    instructions: str = ""
    speed: float | None = bounded(None, 0.25, 4.0)
    #: Rate of the raw PCM `/v1/audio/speech` returns for response_format "pcm": 24000 for
    #: OpenAI; set it for a compatible server that answers at another rate.
    sample_rate: int = bounded(24000, 8000, 48000)
    #: Bytes per read from the response; smaller means earlier first audio.
    chunk_bytes: int = bounded(4800, 256)


class OpenAITTS(_OpenAIClient, TTS):
    """`/v1/audio/speech` as raw 24 kHz PCM16, yielded chunk by chunk as it arrives."""

    name = "openai"
    Options = OpenAITTSOptions

    async def synthesize(self, text: str, preferred: AudioFormat) -> AsyncIterator[AudioChunk]:
        opts: OpenAITTSOptions = self.options
        params: dict[str, Any] = {
            "model": opts.model,
            "voice": opts.voice,
            "input": text,
            "response_format": "pcm",
        }
        if opts.instructions:
            params["instructions"] = opts.instructions
        if opts.speed is not None:
            params["speed"] = opts.speed
        aligner = SampleAligner(2)
        try:
            async with self.client.audio.speech.with_streaming_response.create(**params) as resp:
                body = audio_body(self.name, resp.headers, resp.iter_bytes(opts.chunk_bytes))
                billed = False
                async for data in body:
                    if not billed:  # an answer that is not audio costs nothing
                        billed = True
                        report_usage(Usage(provider=self.name, characters=len(text)))
                    data = aligner.push(data)
                    if data:
                        yield AudioChunk(data, opts.sample_rate)
        except ProviderError:
            raise
        except Exception as exc:
            raise map_error(self.name, exc) from exc


@hookimpl
def register_llm(register: Any) -> None:
    register(OpenAILLM)


@hookimpl
def register_stt(register: Any) -> None:
    register(OpenAISTT)


@hookimpl
def register_tts(register: Any) -> None:
    register(OpenAITTS)
