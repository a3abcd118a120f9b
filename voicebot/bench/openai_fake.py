"""Wire-compatible fake of the OpenAI routes voicebot uses (the tests' fake, and what
`voicebot bench --providers openai-fake` runs in its own process: `python -m
voicebot.bench.openai_fake` prints its URL and serves until stdin closes).

`/v1/chat/completions` streams Server-Sent Events shaped like OpenAI's (a role delta, content
deltas, tool-call deltas keyed by index with the arguments in fragments, a finish_reason chunk,
a usage chunk with empty `choices` when `stream_options.include_usage` is set, then
`data: [DONE]`). `/v1/audio/transcriptions` takes the multipart upload and checks it is a WAV.
`/v1/audio/speech` streams raw 24 kHz PCM16 in deliberately odd-sized chunks.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
import wave
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web

from .fake_base import Answer, Drip, Fail, FakeServer

PCM_RATE = 24000
MS_PER_CHAR = 20


def tone(samples: int, rate: int) -> bytes:
    """A deterministic 440 Hz tone: tests compare received audio against it byte for byte."""
    t = np.arange(samples) / rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


def speech_pcm(text: str, rate: int) -> bytes:
    return tone(len(text) * MS_PER_CHAR * rate // 1000, rate)


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@dataclass
class ChatReply:
    text_parts: list[str] = field(default_factory=lambda: ["Hello", " there", "."])
    #: (id, name, arguments) of each tool call the model makes.
    tool_calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    #: When set, the last content chunk waits for this event (a slow model, under test control).
    hold_last: asyncio.Event | None = None
    pace: float = 0.0
    prompt_tokens: int = 17
    completion_tokens: int = 5


class FakeOpenAI(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.chat_replies: deque[ChatReply] = deque()
        self.transcripts: deque[str] = deque()
        #: When the last chat chunk was written: lets an end-to-end test compare with audio.
        self.chat_finished_at: float | None = None
        #: Seconds each route waits before its first byte: a provider's think time, for the
        #: load benchmark (benchmarks/load_sdk.py). Keys: chat, transcriptions, speech.
        self.latency: dict[str, float] = {}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/chat/completions", self.chat),
            web.post("/v1/audio/transcriptions", self.transcriptions),
            web.post("/v1/audio/speech", self.speech),
        ]

    async def _think(self, route: str) -> None:
        delay = self.latency.get(route, 0.0)
        if delay:
            await asyncio.sleep(delay)

    # ------------------------------------------------------------------------------- chat

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        await self.record("chat", request, body)
        behaviour = self.next_behaviour("chat")
        if isinstance(behaviour, Fail):
            return self.fail_response(behaviour)
        reply = self.chat_replies.popleft() if self.chat_replies else ChatReply()
        await self._think("chat")
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return await self.stream(
            "chat",
            request,
            self._sse(body["model"], reply, include_usage),
            behaviour,
            "text/event-stream",
            reply.pace,
        )

    async def _sse(self, model: str, reply: ChatReply, include_usage: bool) -> AsyncIterator[bytes]:
        base = {
            "id": "chatcmpl-fake1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "system_fingerprint": "fp_fake",
        }

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n".encode()

        def delta(d: dict[str, Any], finish: str | None = None) -> bytes:
            return event([{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}])

        yield delta({"role": "assistant", "content": "", "refusal": None})
        for i, part in enumerate(reply.text_parts):
            if reply.hold_last is not None and i == len(reply.text_parts) - 1:
                await reply.hold_last.wait()
            yield delta({"content": part})
        for index, (call_id, name, args) in enumerate(reply.tool_calls):
            yield delta(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            )
            text = json.dumps(args)
            for piece in (text[i : i + 7] for i in range(0, len(text), 7)):
                yield delta({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield delta({}, "tool_calls" if reply.tool_calls else "stop")
        self.chat_finished_at = time.monotonic()
        if include_usage:
            usage = {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            }
            yield event([], usage=usage)
        yield b"data: [DONE]\n\n"

    # ------------------------------------------------------------------------------- audio

    async def transcriptions(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        with wave.open(io.BytesIO(upload.file.read())) as w:
            seconds = w.getnframes() / w.getframerate()
            info = {"rate": w.getframerate(), "channels": w.getnchannels(), "seconds": seconds}
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        await self.record("transcriptions", request, {**fields, **info})
        behaviour = self.next_behaviour("transcriptions")
        if isinstance(behaviour, Fail):
            return self.fail_response(behaviour)
        text = self.transcripts.popleft() if self.transcripts else "hello world"
        await self._think("transcriptions")
        answer = {"text": text, "usage": {"type": "duration", "seconds": seconds}}
        if isinstance(behaviour, Drip):
            body = json.dumps(answer).encode()
            return await self.stream(
                "transcriptions", request, [body], behaviour, "application/json"
            )
        return web.json_response(answer)

    async def speech(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        await self.record("speech", request, body)
        behaviour = self.next_behaviour("speech")
        if isinstance(behaviour, Fail):
            return self.fail_response(behaviour)
        if isinstance(behaviour, Answer):
            return self.answer_response(behaviour)
        assert body["response_format"] == "pcm", body
        await self._think("speech")
        chunks = split(speech_pcm(body["input"], PCM_RATE), 1001)  # odd: tests sample alignment
        return await self.stream("speech", request, chunks, behaviour, "audio/pcm", self.audio_pace)


async def _serve_until_stdin_closes(latency: dict[str, float]) -> None:
    async with FakeOpenAI() as fake:
        fake.latency = latency
        fake.keep_records = False
        print(fake.url, flush=True)
        await asyncio.to_thread(sys.stdin.read)  # the parent closes our stdin to stop us


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description="the loopback OpenAI fake, for voicebot bench")
    p.add_argument("--stt-ms", type=float, default=150, help="transcription answer delay")
    p.add_argument("--llm-ms", type=float, default=200, help="delay before the first token")
    p.add_argument("--tts-ms", type=float, default=150, help="delay before the first audio")
    a = p.parse_args()
    delays = {"transcriptions": a.stt_ms / 1000, "chat": a.llm_ms / 1000, "speech": a.tts_ms / 1000}
    asyncio.run(_serve_until_stdin_closes(delays))


if __name__ == "__main__":
    main()
