"""A Twilio-shaped far end for tests and benchmarks: the carrier-neutral `CarrierPhone` speaking
Twilio's media-stream protocol over a real WebSocket, playing the bot's audio on a real-time clock
like a phone line and echoing each mark once the audio sent before it has finished playing (or at
once, when a `clear` drops it); plus the voice webhook and `X-Twilio-Signature` helpers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import xml.etree.ElementTree as ET
from typing import Any

import aiohttp
import numpy as np
import websockets

from voicebot.audio import Resampler, encode

from .carrier_phone import CarrierPhone, Dialect, Out
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


class Twilio(Dialect):
    """Twilio's media-stream messages (the `start` takes its parameters and format from the
    phone's `start()` call)."""

    def start(self, phone: CarrierPhone) -> str:
        return json.dumps(
            {
                "event": "start",
                "sequenceNumber": str(phone.next_seq()),
                "start": {
                    "accountSid": phone.account_id,
                    "streamSid": phone.stream_id,
                    "callSid": phone.call_id,
                    "tracks": ["inbound"],
                    "mediaFormat": phone.media_format
                    or {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": {**phone.parameters, **phone.start_parameters},
                },
                "streamSid": phone.stream_id,
            }
        )

    def media(self, phone: CarrierPhone, payload: bytes) -> str:
        seq = phone.next_seq()
        return json.dumps(
            {
                "event": "media",
                "sequenceNumber": str(seq),
                "media": {
                    "track": "inbound",
                    "chunk": str(seq),
                    "timestamp": str(phone.sent_ms),
                    "payload": base64.b64encode(payload).decode(),
                },
                "streamSid": phone.stream_id,
            }
        )

    def dtmf(self, phone: CarrierPhone, digit: str) -> str:
        return json.dumps({"event": "dtmf", "streamSid": phone.stream_id, "dtmf": {"digit": digit}})

    def stop(self, phone: CarrierPhone) -> str:
        return json.dumps(
            {
                "event": "stop",
                "streamSid": phone.stream_id,
                "stop": {"accountSid": phone.account_id, "callSid": phone.call_id},
            }
        )

    def outbound(self, phone: CarrierPhone, raw: str | bytes) -> Out:
        msg = json.loads(raw)
        assert msg.get("streamSid") == phone.stream_id, msg
        if msg.get("event") == "media":
            return Out("media", audio=base64.b64decode(msg["media"]["payload"]))
        if msg.get("event") == "mark":
            return Out("mark", name=msg["mark"]["name"])
        if msg.get("event") == "clear":
            return Out("clear")
        return Out("other", raw=msg)

    def echo(self, phone: CarrierPhone, name: str) -> str:
        return json.dumps({"event": "mark", "streamSid": phone.stream_id, "mark": {"name": name}})


class Phone(CarrierPhone):
    """The Twilio far end: a `CarrierPhone` speaking Twilio, with Twilio's names."""

    def __init__(
        self,
        ws: Any,
        stream_sid: str = "MZ0001",
        call_sid: str = "CA0001",
        playout_delay_s: float = 0.0,
    ) -> None:
        super().__init__(
            ws,
            Twilio(),
            stream_id=stream_sid,
            call_id=call_sid,
            account_id="AC0001",
            playout_delay_s=playout_delay_s,
        )
        self.start_parameters: dict[str, str] = {}
        self.media_format: dict | None = None

    @property
    def stream_sid(self) -> str:
        return self.stream_id

    @property
    def call_sid(self) -> str:
        return self.call_id

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

    async def connected(self) -> None:
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    async def start(self, params: dict[str, str] | None = None, fmt: dict | None = None) -> None:
        self.start_parameters, self.media_format = dict(params or {}), fmt
        await super().start()


def pcm_rms(mulaw: bytes) -> float:
    from voicebot.audio import decode

    pcm = np.frombuffer(decode(mulaw, "mulaw"), dtype="<i2").astype(float)
    return float(np.sqrt(np.mean(pcm**2))) if len(pcm) else 0.0
