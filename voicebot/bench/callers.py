"""The two doors as a load generator sees them: a browser on `/ws/voice` and a Twilio media
stream on `/twilio/media`, each reduced to the same three signals the caller loop needs.

`on_audio()`: the bot's reply audio arrived; `on_speaking(bool)`: the bot started / finished
speaking (the caller may take its turn once it stopped); `on_server_v2v(ms)`: the server's own
voice-to-voice of a turn, where the door reports it (the browser's `metrics` messages).
Clients use `websockets` only; the Twilio webhook is one form POST through the standard
library, in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import websockets

from ..audio import Resampler, encode

RATE = 16000
FRAME_MS = 20


class Caller:
    """A connection; subclasses speak one door's protocol."""

    def __init__(
        self,
        base: str,
        on_audio: Callable[[], None],
        on_speaking: Callable[[bool], None],
        on_server_v2v: Callable[[float], None],
    ) -> None:
        self.base = base.rstrip("/")
        self.on_audio = on_audio
        self.on_speaking = on_speaking
        self.on_server_v2v = on_server_v2v
        self.ws: websockets.ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None

    @property
    def ws_base(self) -> str:
        return "ws" + self.base.removeprefix("http")

    async def connect(self) -> None:
        raise NotImplementedError

    async def send(self, frame: bytes) -> None:
        """One 20 ms frame of 16 kHz PCM16 from the caller's microphone."""
        raise NotImplementedError

    async def _read(self) -> None:
        raise NotImplementedError

    def start_reading(self) -> None:
        self.reader = asyncio.ensure_future(self._read())

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        if self.ws is not None:
            await self.ws.close()


class BrowserCaller(Caller):
    """`/ws/voice`: binary PCM both ways; `status` messages say when the bot speaks."""

    async def connect(self) -> None:
        url = f"{self.ws_base}/ws/voice?sample_rate={RATE}"
        self.ws = await websockets.connect(url, max_queue=None, compression=None)
        self.start_reading()

    async def send(self, frame: bytes) -> None:
        assert self.ws is not None
        await self.ws.send(frame)

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if isinstance(msg, bytes):
                self.on_audio()
                continue
            ev = json.loads(msg)
            kind = ev.get("type")
            if kind == "status" and ev.get("status") in ("speaking", "listening"):
                self.on_speaking(ev["status"] == "speaking")
            elif kind == "metrics" and ev.get("turn") and ev.get("voice_to_voice_ms") is not None:
                self.on_server_v2v(ev["voice_to_voice_ms"])


class TwilioCaller(Caller):
    """A phone call as Twilio places it: the voice webhook, then the media stream (`connected`,
    `start`, base64 μ-law 8 kHz `media`). The bot's audio is "played" on a real-time clock and
    each mark echoed once the audio before it has played, as Twilio does; the bot has finished
    speaking when all its audio has played and every mark is echoed."""

    _payloads: dict[bytes, str] = {}  # PCM16 16 kHz frame → its base64 μ-law 8 kHz payload

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.sid = "MZ" + os.urandom(16).hex()
        self.ts = 0
        self.playout_end = 0.0
        self.marks: dict[str, asyncio.TimerHandle] = {}
        self.sends: set[asyncio.Task[None]] = set()
        self.speaking = False
        self.prefix = ""

    def _webhook(self, call_sid: str) -> dict[str, str | None]:
        form = {"CallSid": call_sid, "From": "+15550001111", "To": "+15550002222"}
        body = urllib.parse.urlencode(form).encode()
        with urllib.request.urlopen(f"{self.base}/twilio/voice", body, timeout=10) as r:
            twiml = ET.fromstring(r.read())
        return {p.get("name") or "": p.get("value") for p in twiml.iter("Parameter")}

    async def connect(self) -> None:
        call_sid = "CA" + self.sid[2:]
        params = await asyncio.to_thread(self._webhook, call_sid)
        self.ws = await websockets.connect(
            f"{self.ws_base}/twilio/media", max_queue=None, compression=None
        )
        await self.ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1"}))
        start = {
            "streamSid": self.sid,
            "accountSid": "AC0",
            "callSid": call_sid,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": params,
        }
        await self.ws.send(json.dumps({"event": "start", "start": start, "streamSid": self.sid}))
        self.prefix = f'{{"event":"media","streamSid":"{self.sid}","media":{{"track":"inbound",'
        self.start_reading()

    async def send(self, frame: bytes) -> None:
        assert self.ws is not None
        payload = self._payloads.get(frame)
        if payload is None:
            rs = Resampler(RATE, 8000)
            mulaw = encode(rs.process(frame) + rs.flush(), "mulaw")[:160]
            payload = self._payloads[frame] = base64.b64encode(mulaw).decode()
        await self.ws.send(f'{self.prefix}"timestamp":"{self.ts}","payload":"{payload}"}}}}')
        self.ts += FRAME_MS

    async def _read(self) -> None:
        assert self.ws is not None
        loop = asyncio.get_running_loop()
        async for raw in self.ws:
            now = loop.time()
            if isinstance(raw, str) and raw.startswith('{"event":"media"'):
                played_s = _payload_bytes(raw) / 8000  # μ-law: a byte a sample
                self.playout_end = max(self.playout_end, now) + played_s
                if not self.speaking:
                    self.speaking = True
                    self.on_speaking(True)
                self.on_audio()
                continue
            msg = json.loads(raw)
            if msg.get("event") == "mark":
                name = msg["mark"]["name"]
                self.marks[name] = loop.call_at(max(self.playout_end, now), self._echo, name)
            elif msg.get("event") == "clear":
                self.playout_end = now
                for name, handle in list(self.marks.items()):
                    handle.cancel()
                    self._echo(name)

    def _echo(self, name: str) -> None:
        assert self.ws is not None
        self.marks.pop(name, None)
        mark = {"event": "mark", "streamSid": self.sid, "mark": {"name": name}}
        task = asyncio.ensure_future(self.ws.send(json.dumps(mark)))
        self.sends.add(task)
        task.add_done_callback(self.sends.discard)
        done = self.playout_end <= asyncio.get_running_loop().time() + 0.001
        if not self.marks and done and self.speaking:
            self.speaking = False
            self.on_speaking(False)

    async def close(self) -> None:
        for handle in self.marks.values():
            handle.cancel()
        if self.ws is not None:
            stop = {"event": "stop", "streamSid": self.sid, "stop": {}}
            try:
                await self.ws.send(json.dumps(stop))
            except websockets.ConnectionClosed:
                pass
        await super().close()


def _payload_bytes(media: str) -> int:
    """Decoded size of a media message's base64 payload, without parsing the JSON or decoding:
    the generator reads 50 of these a second per call and must not be the bottleneck."""
    start = media.index('"', media.index('"payload"') + 9) + 1
    end = media.index('"', start)
    return (end - start) * 3 // 4 - media.count("=", start, end)


PROTOCOLS: dict[str, type[Caller]] = {"browser": BrowserCaller, "twilio": TwilioCaller}
