"""Wire-compatible fake of Deepgram's live `/v1/listen` WebSocket and Aura `/v1/speak`.

The listen socket behaves like a tiny recogniser with a script of utterances: loud frames are
speech, all-quiet frames silence. It sends `SpeechStarted` at the start of speech (vad_events),
interim `Results` while speech continues, `Results` with `is_final`/`speech_final` and then
`UtteranceEnd` when the configured endpointing silence has passed, `Results` with `from_finalize`
in answer to a Finalize message, and `Metadata` on CloseStream, in the JSON shapes Deepgram sends.
"""

from __future__ import annotations

import json
import uuid
from collections import deque
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from voicebot.audio import encode
from voicebot.bench.fake_base import Answer, Drop, Fail, FakeServer
from voicebot.bench.openai_fake import split, tone

MS_PER_CHAR = 20
SPEECH_RMS = 500.0


def speak_audio(text: str, encoding: str, rate: int) -> bytes:
    pcm = tone(len(text) * MS_PER_CHAR * rate // 1000, rate)
    return encode(pcm, "mulaw") if encoding == "mulaw" else pcm


class ListenSession:
    """State of one fake live-transcription socket."""

    def __init__(self, fake: FakeDeepgram, query: dict[str, str]) -> None:
        self.fake = fake
        self.rate = int(query.get("sample_rate", "16000"))
        self.endpointing = (
            int(query["endpointing"]) if query.get("endpointing", "").isdigit() else None
        )
        self.vad_events = query.get("vad_events") == "true"
        self.interim = query.get("interim_results") == "true"
        self.utterance_end = "utterance_end_ms" in query
        self.request_id = str(uuid.uuid4())
        self.audio_bytes = 0
        self.frames = 0
        self.in_speech = False
        self.speech_frames = 0
        self.silence_ms = 0.0
        self.spoken_s = 0.0  # audio seconds of speech in the current utterance

    def _seconds(self) -> float:
        return self.audio_bytes / 2 / self.rate

    def results(
        self, text: str, *, is_final: bool, speech_final: bool = False, from_finalize: bool = False
    ) -> dict[str, Any]:
        words = text.split()
        start = max(0.0, self._seconds() - self.spoken_s - self.silence_ms / 1000)
        step = self.spoken_s / max(1, len(words))
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(self.spoken_s, 3),
            "start": round(start, 3),
            "is_final": is_final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {
                "alternatives": [
                    {
                        "transcript": text,
                        "confidence": 0.97,
                        "words": [
                            {
                                "word": w.lower().strip(".,?!"),
                                "start": round(start + i * step, 3),
                                "end": round(start + (i + 1) * step, 3),
                                "confidence": 0.97,
                                "punctuated_word": w,
                            }
                            for i, w in enumerate(words)
                        ],
                    }
                ]
            },
            "metadata": {
                "request_id": self.request_id,
                "model_info": {
                    "name": "2-general-nova",
                    "version": "2024-01-18.26916",
                    "arch": "nova-3",
                },
                "model_uuid": "c0d1a568-ce81-4fea-97e7-bd45cb1fdf3c",
            },
        }

    def on_audio(self, pcm: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        self.audio_bytes += len(pcm)
        self.frames += 1
        ms = len(pcm) / 2 / self.rate * 1000
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], "<i2").astype(np.float64)
        loud = samples.size > 0 and float(np.sqrt(np.mean(samples**2))) > SPEECH_RMS
        if loud:
            if not self.in_speech and self.vad_events:
                out.append(
                    {
                        "type": "SpeechStarted",
                        "channel": [0, 1],
                        "timestamp": round(self._seconds() - ms / 1000, 3),
                    }
                )
            self.in_speech = True
            self.silence_ms = 0.0
            self.speech_frames += 1
            self.spoken_s += ms / 1000
            if self.interim and self.speech_frames % 5 == 0:
                words = self.fake.current().split()
                shown = words[: min(len(words), self.speech_frames // 5)]
                out.append(self.results(" ".join(shown), is_final=False))
        elif self.in_speech:
            self.silence_ms += ms
            if self.endpointing is not None and self.silence_ms >= self.endpointing:
                out.append(self.results(self.fake.take(), is_final=True, speech_final=True))
                if self.utterance_end:
                    out.append(
                        {
                            "type": "UtteranceEnd",
                            "channel": [0, 1],
                            "last_word_end": round(self._seconds() - self.silence_ms / 1000, 3),
                        }
                    )
                self._utterance_done()
        return out

    def on_finalize(self) -> dict[str, Any] | None:
        """Like Deepgram, answer Finalize only when audio was still waiting to be finalized."""
        if not self.speech_frames:
            return None
        msg = self.results(self.fake.take(), is_final=True, from_finalize=True)
        self._utterance_done()
        return msg

    def _utterance_done(self) -> None:
        self.in_speech, self.speech_frames, self.silence_ms, self.spoken_s = False, 0, 0.0, 0.0

    def metadata(self) -> dict[str, Any]:
        return {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": self.request_id,
            "sha256": "0" * 64,
            "created": "2026-01-01T00:00:00.000Z",
            "duration": round(self._seconds(), 3),
            "channels": 1,
        }


class FakeDeepgram(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.utterances: deque[str] = deque()
        self.control: list[str] = []  # the JSON control messages received, by type
        self.sessions: list[ListenSession] = []

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v1/listen", self.listen), web.post("/v1/speak", self.speak)]

    def current(self) -> str:
        return self.utterances[0] if self.utterances else "hello world"

    def take(self) -> str:
        return self.utterances.popleft() if self.utterances else "hello world"

    async def listen(self, request: web.Request) -> web.StreamResponse:
        await self.record("listen", request)
        behaviour = self.next_behaviour("listen")
        if isinstance(behaviour, Fail):
            return self.fail_response(behaviour)
        if not request.headers.get("Authorization", "").startswith("Token "):
            return web.json_response({"err_code": "INVALID_AUTH"}, status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = ListenSession(self, dict(request.query))
        self.sessions.append(session)
        closed_by_client = True
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    if isinstance(behaviour, Drop) and session.frames >= behaviour.after_chunks:
                        assert request.transport is not None
                        request.transport.abort()
                        closed_by_client = False
                        break
                    for event in session.on_audio(msg.data):
                        await ws.send_str(json.dumps(event))
                elif msg.type == WSMsgType.TEXT:
                    kind = json.loads(msg.data).get("type")
                    self.control.append(kind)
                    await self._notify()
                    answer = session.on_finalize() if kind == "Finalize" else None
                    if answer is not None:
                        await ws.send_str(json.dumps(answer))
                    elif kind == "CloseStream":
                        await ws.send_str(json.dumps(session.metadata()))
                        await ws.close()
                        closed_by_client = False
                        break
        finally:
            if closed_by_client:
                await self.mark(self.disconnects, "listen")
            else:
                await self.mark(self.completed, "listen")
        return ws

    async def speak(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        await self.record("speak", request, body)
        behaviour = self.next_behaviour("speak")
        if isinstance(behaviour, Fail):
            return self.fail_response(behaviour)
        if isinstance(behaviour, Answer):
            return self.answer_response(behaviour)
        q = request.query
        assert q.get("container") == "none", "raw audio expected: container=none"
        encoding, rate = q.get("encoding", "linear16"), int(q.get("sample_rate", "24000"))
        chunks = split(speak_audio(body["text"], encoding, rate), 999)
        ctype = "audio/basic" if encoding == "mulaw" else "audio/l16"
        return await self.stream("speak", request, chunks, behaviour, ctype, self.audio_pace)
