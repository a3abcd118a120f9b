"""Wire-compatible fake of ElevenLabs' streaming TTS route,
`POST /v1/text-to-speech/{voice_id}/stream?output_format=...`, authenticated by `xi-api-key`."""

from __future__ import annotations

from aiohttp import web

from voicebot.audio import encode
from voicebot.bench.fake_base import Answer, Fail, FakeServer
from voicebot.bench.openai_fake import split, tone

MS_PER_CHAR = 20


def eleven_audio(text: str, output_format: str) -> bytes:
    codec, rate = output_format.split("_")[:2]
    pcm = tone(len(text) * MS_PER_CHAR * int(rate) // 1000, int(rate))
    return {"pcm": pcm, "ulaw": encode(pcm, "mulaw"), "alaw": encode(pcm, "alaw")}[codec]


class FakeElevenLabs(FakeServer):
    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/text-to-speech/{voice_id}/stream", self.tts_stream)]

    async def tts_stream(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        body["voice_id"] = request.match_info["voice_id"]
        await self.record("tts", request, body)
        behaviour = self.next_behaviour("tts")
        if isinstance(behaviour, Fail):
            return self.fail_response(behaviour)
        if isinstance(behaviour, Answer):
            return self.answer_response(behaviour)
        if not request.headers.get("xi-api-key"):
            return web.json_response({"detail": {"status": "invalid_api_key"}}, status=401)
        output_format = request.query.get("output_format", "mp3_44100_128")
        chunks = split(eleven_audio(body["text"], output_format), 1023)
        return await self.stream("tts", request, chunks, behaviour, "audio/basic", self.audio_pace)
