"""A Twilio-shaped far end for tests and benchmarks: it speaks the media-stream protocol over a
real WebSocket, plays the bot's audio on a real-time clock like a phone line, and echoes each
mark once the audio sent before it has finished playing (or at once, when a `clear` drops it)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import xml.etree.ElementTree as ET
from typing import Any

import aiohttp
import numpy as np
import websockets

from voicebot.audio import Resampler, encode

from .support import base_config

FRAME = 160  # 20 ms of μ-law at 8 kHz
CALLER = {"AccountSid": "AC0001", "From": "+15550001111", "To": "+15550002222"}


def phone_config(**over: Any) -> dict[str, Any]:
    """`base_config` with the Twilio door explicitly opened (no auth token, no security.auth)."""
    cfg = base_config(**over)
    cfg.setdefault("telephony", {}).setdefault("twilio", {})["allow_unsigned"] = True
    return cfg


async def answer(
    server: Any, form: dict[str, str], auth_token: str = "", headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """POST Twilio's voice webhook (signed when `auth_token` is given): status and body."""
    url = f"{server.http}/twilio/voice"
    headers = dict(headers or {})
    if auth_token:
        headers["X-Twilio-Signature"] = twilio_sign(auth_token, url, form)
    async with aiohttp.ClientSession() as http, http.post(url, data=form, headers=headers) as r:
        return r.status, await r.text()


def stream_of(doc: str) -> tuple[str, dict[str, str]]:
    """The `<Stream url>` and its `<Parameter>`s of a `<Connect>` TwiML answer."""
    stream = ET.fromstring(doc).find("./Connect/Stream")
    assert stream is not None, doc
    return stream.get("url"), {p.get("name"): p.get("value") for p in stream.findall("Parameter")}


def twilio_sign(token: str, url: str, params: dict[str, str] | None = None) -> str:
    data = url + "".join(k + v for k, v in sorted((params or {}).items()))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def to_mulaw_8k(pcm: bytes, rate: int) -> bytes:
    rs = Resampler(rate, 8000)
    return encode(rs.process(pcm) + rs.flush(), "mulaw")


def mulaw_silence(ms: int) -> bytes:
    return encode(bytes(16 * ms), "mulaw")


class Phone:
    def __init__(
        self,
        ws: Any,
        stream_sid: str = "MZ0001",
        call_sid: str = "CA0001",
        playout_delay_s: float = 0.0,
    ) -> None:
        self.ws = ws
        self.playout_delay_s = playout_delay_s  # network + jitter buffer before the caller hears
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.media: list[tuple[float, bytes]] = []  # (arrival, decoded μ-law payload)
        self.marks: list[tuple[float, str]] = []  # marks received
        self.echoed: list[tuple[float, str]] = []  # marks sent back
        self.clears: list[float] = []
        self.other: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self.parameters: dict[str, str] = {}  # from the webhook's TwiML, sent back on `start`
        self._playout_end = 0.0
        self._echoes: dict[str, asyncio.Task[None]] = {}
        self._changed = asyncio.Condition()
        self._seq = 0
        self._sent_ms = 0
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def dial(cls, url: str, headers: dict[str, str] | None = None, **kw: Any) -> Phone:
        """A bare media stream, with no webhook before it (it has no stream token)."""
        ws = await websockets.connect(url, additional_headers=headers or {}, max_size=2**20)
        return cls(ws, **kw)

    @classmethod
    async def call(
        cls,
        server: Any,
        auth_token: str = "",
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> Phone:
        """What Twilio does: the voice webhook first, then the media stream it answered with,
        whose `start` carries the TwiML's parameters (the one-time stream token among them)."""
        call_sid = kw.setdefault("call_sid", "CA0001")
        status, doc = await answer(
            server, {**CALLER, "CallSid": call_sid, **(form or {})}, auth_token, headers
        )
        assert status == 200, doc
        _, parameters = stream_of(doc)
        url = f"{server.url}/twilio/media"
        signed = {"X-Twilio-Signature": twilio_sign(auth_token, url)} if auth_token else {}
        phone = await cls.dial(url, signed, **kw)
        phone.parameters = parameters
        return phone

    # ---------------------------------------------------------------------------- sending

    async def send(self, msg: dict[str, Any] | str) -> None:
        await self.ws.send(msg if isinstance(msg, str) else json.dumps(msg))

    async def connected(self) -> None:
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    async def start(self, params: dict[str, str] | None = None, fmt: dict | None = None) -> None:
        self._seq += 1
        await self.send(
            {
                "event": "start",
                "sequenceNumber": str(self._seq),
                "start": {
                    "accountSid": "AC0001",
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "mediaFormat": fmt
                    or {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": {**self.parameters, **(params or {})},
                },
                "streamSid": self.stream_sid,
            }
        )

    def media_message(self, payload: bytes) -> str:
        self._seq += 1
        msg = {
            "event": "media",
            "sequenceNumber": str(self._seq),
            "media": {
                "track": "inbound",
                "chunk": str(self._seq),
                "timestamp": str(self._sent_ms),
                "payload": base64.b64encode(payload).decode(),
            },
            "streamSid": self.stream_sid,
        }
        self._sent_ms += 20
        return json.dumps(msg)

    async def talk(self, mulaw: bytes) -> None:
        """Send μ-law audio as 20 ms media frames, paced in real time like a phone line."""
        start = time.monotonic()
        for i, off in enumerate(range(0, len(mulaw), FRAME)):
            await self.ws.send(self.media_message(mulaw[off : off + FRAME]))
            delay = start + (i + 1) * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # the pace of a phone line, not a wait for luck

    async def dtmf(self, digit: str) -> None:
        await self.send({"event": "dtmf", "streamSid": self.stream_sid, "dtmf": {"digit": digit}})

    async def stop(self) -> None:
        await self.send(
            {
                "event": "stop",
                "streamSid": self.stream_sid,
                "stop": {"accountSid": "AC0001", "callSid": self.call_sid},
            }
        )

    # ---------------------------------------------------------------------------- receiving

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self._on_message(json.loads(raw))
                async with self._changed:
                    self._changed.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()
            for task in self._echoes.values():
                task.cancel()
            async with self._changed:
                self._changed.notify_all()

    def _on_message(self, msg: dict[str, Any]) -> None:
        now = time.monotonic()
        event = msg.get("event")
        assert msg.get("streamSid") == self.stream_sid, msg
        if event == "media":
            payload = base64.b64decode(msg["media"]["payload"])
            self.media.append((now, payload))
            self._playout_end = max(self._playout_end, now) + len(payload) / 8000
        elif event == "mark":
            name = msg["mark"]["name"]
            self.marks.append((now, name))
            due = self._playout_end + self.playout_delay_s
            self._echoes[name] = asyncio.ensure_future(self._echo(name, due))
        elif event == "clear":
            self.clears.append(now)
            self._playout_end = now
            for name, task in list(self._echoes.items()):  # Twilio returns cleared marks at once
                task.cancel()
                self._echoes[name] = asyncio.ensure_future(self._echo(name, now))
        else:
            self.other.append(msg)

    async def _echo(self, name: str, due: float) -> None:
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # until the audio before the mark has played
        self._echoes.pop(name, None)
        self.echoed.append((time.monotonic(), name))
        await self.send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})
        async with self._changed:
            self._changed.notify_all()

    async def wait(self, pred: Any, within_s: float = 10.0) -> None:
        async def check() -> None:
            async with self._changed:
                while not pred():
                    if self.closed.is_set():
                        raise AssertionError(f"stream closed ({self.close_code}) while waiting")
                    await self._changed.wait()

        await asyncio.wait_for(check(), within_s)

    async def wait_closed(self, within_s: float = 10.0) -> int | None:
        await asyncio.wait_for(self.closed.wait(), within_s)
        return self.close_code

    def audio(self, since: float = 0.0) -> bytes:
        return b"".join(p for t, p in self.media if t >= since)

    def idle(self) -> bool:
        """All the bot's audio so far has played and every mark has come back."""
        return not self._echoes and len(self.echoed) == len(self.marks) > 0

    async def close(self) -> None:
        await self.ws.close()
        await self._reader


def pcm_rms(mulaw: bytes) -> float:
    from voicebot.audio import decode

    pcm = np.frombuffer(decode(mulaw, "mulaw"), dtype="<i2").astype(float)
    return float(np.sqrt(np.mean(pcm**2))) if len(pcm) else 0.0
