"""FreeSWITCH's `mod_audio_stream` as a far end, written from the module's README
(github.com/amigniter/mod_audio_stream), independent of the plugin's code: what
`uuid_audio_stream <uuid> start <ws-url> mono <8k|16k> <metadata>` does against our WebSocket.
FreeSWITCH is not installable on this machine, so this client stands in for it.

- the handshake carries `STREAM_EXTRA_HEADERS` (a JSON object of header → value) as headers;
- `metadata`, when given, is the FIRST message, as TEXT;
- the caller's audio follows as BINARY raw L16 (16-bit signed little-endian), mono, at the chosen
  rate, in chunks of `STREAM_BUFFER_SIZE` ms (20 by default), one chunk each time it fills;
- `send_text <text>` sends TEXT; `stop <text>` sends its text, then closes the socket;
- TEXT from the server: `{"type":"streamAudio","data":{"audioDataType":"raw","sampleRate":N,
  "audioData":"<base64>"}}` is decoded and played (here: recorded with its arrival time); any
  other text is a `mod_audio_stream::json` event (here: recorded in `events`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
import wave
from typing import Any

import websockets

from voicebot.audio import Resampler

from .audiosocket_client import SPEECH


def speech(rate: int, name: str = "goforward.wav") -> bytes:
    """Recorded human speech as the module sends it: L16 at `rate`."""
    with wave.open(str(SPEECH / name)) as w:
        pcm, native = w.readframes(w.getnframes()), w.getframerate()
    rs = Resampler(native, rate)
    return rs.process(pcm) + rs.flush()


def silence(ms: int, rate: int) -> bytes:
    return bytes(2 * rate * ms // 1000)


class ModAudioStream:
    def __init__(self, ws: Any, rate: int, buffer_ms: int) -> None:
        self.ws = ws
        self.rate = rate
        self.buffer_ms = buffer_ms
        self.uuid = str(uuid.uuid4())
        self.played: list[tuple[float, bytes]] = []  # (arrival, L16) of each streamAudio
        self.sample_rates: set[int] = set()
        self.events: list[dict[str, Any]] = []  # mod_audio_stream::json bodies
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self._changed = asyncio.Condition()
        self._task = asyncio.ensure_future(self._read())

    @classmethod
    async def start(
        cls,
        server: Any,
        token: str | None = "s3cret",
        path: str = "/freeswitch/stream",
        rate: int = 8000,
        buffer_ms: int = 20,
    ) -> ModAudioStream:
        """The upgrade, with `STREAM_EXTRA_HEADERS='{"Authorization":"Bearer <token>"}'`."""
        extra = {"Authorization": f"Bearer {token}"} if token is not None else {}
        ws = await websockets.connect(f"{server.url}{path}", additional_headers=extra)
        return cls(ws, rate, buffer_ms)

    def metadata(self, **over: Any) -> str:
        meta = {"call_id": self.uuid, "from": "+15550001111", "to": "1000", **over}
        return json.dumps(meta, separators=(",", ":"))  # one argv word: no spaces

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                now = time.monotonic()
                assert isinstance(msg, str), "the module plays only TEXT streamAudio messages"
                body = json.loads(msg)
                if body.get("type") == "streamAudio":
                    data = body["data"]
                    assert data["audioDataType"] == "raw"
                    self.sample_rates.add(data["sampleRate"])
                    self.played.append((now, base64.b64decode(data["audioData"], validate=True)))
                else:
                    self.events.append(body)
                async with self._changed:
                    self._changed.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason or ""
            self.closed.set()
            async with self._changed:
                self._changed.notify_all()

    async def send(self, msg: str | bytes) -> None:
        try:
            await self.ws.send(msg)
        except websockets.ConnectionClosed:
            pass

    async def send_text(self, text: str) -> None:
        """`uuid_audio_stream <uuid> send_text <text>`."""
        await self.send(text)

    async def dtmf(self, digit: str) -> None:
        """What the documented dialplan hook sends for a key press."""
        await self.send_text(json.dumps({"event": "dtmf", "digit": digit}, separators=(",", ":")))

    async def talk(self, pcm: bytes) -> None:
        """BINARY chunks of `buffer_ms`, one each time the module's buffer fills."""
        step = 2 * self.rate * self.buffer_ms // 1000
        start = time.monotonic()
        for i, off in enumerate(range(0, len(pcm) - step + 1, step)):
            await self.send(pcm[off : off + step])
            delay = start + (i + 1) * self.buffer_ms / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # the pace of a phone line, not a wait for luck

    async def stop(self, text: str | None = None) -> None:
        """`uuid_audio_stream <uuid> stop [text]`: the text, then the close."""
        if text is not None:
            await self.send(text)
        await self.ws.close()
        await self._task

    async def wait(self, pred: Any, timeout: float = 10.0) -> None:
        async def check() -> None:
            async with self._changed:
                while not pred():
                    if self.closed.is_set():
                        raise AssertionError(f"closed ({self.close_code} {self.close_reason})")
                    await self._changed.wait()

        await asyncio.wait_for(check(), timeout)

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    def audio(self, since: float = 0.0) -> list[tuple[float, bytes]]:
        return [(t, pcm) for t, pcm in self.played if t >= since]
