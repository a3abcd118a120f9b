"""A carrier-neutral far end for the carrier tests: one `CarrierPhone` speaks any carrier's
media stream over a real WebSocket through a `Dialect` (that carrier's message shapes), plays the
bot's audio on a real-time clock like a phone line, and acknowledges each mark once the audio
sent before it has played (at once, or never, after a clear: as that carrier does).

`tests/twilio_phone.py`'s `Phone` is this phone with Twilio's dialect.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import websockets

from voicebot.audio import Resampler, decode, encode


@dataclass
class Out:
    """One message from the bot, as the phone understood it."""

    kind: str  # media | mark | clear | other
    audio: bytes = b""
    name: str = ""
    raw: Any = None


class Dialect:
    """One carrier's wire shapes, as its media stream sends and expects them."""

    encoding = "mulaw"
    rate = 8000
    #: what the carrier does with pending marks on a clear: "echo" them at once, or "drop" them
    on_clear = "echo"

    def start(self, phone: CarrierPhone) -> str | None:
        raise NotImplementedError

    def media(self, phone: CarrierPhone, payload: bytes) -> str | bytes:
        raise NotImplementedError

    def dtmf(self, phone: CarrierPhone, digit: str) -> str:
        raise NotImplementedError

    def stop(self, phone: CarrierPhone) -> str | None:
        return None  # a carrier without a stop message just closes the socket

    def outbound(self, phone: CarrierPhone, raw: str | bytes) -> Out:
        raise NotImplementedError

    def echo(self, phone: CarrierPhone, name: str) -> str:
        raise NotImplementedError

    def cleared(self, phone: CarrierPhone) -> str | None:
        """What the carrier sends once a clear took effect, if anything."""
        return None

    @property
    def frame_bytes(self) -> int:
        return self.rate // 50 * (2 if self.encoding == "pcm_s16le" else 1)

    def encode_pcm(self, pcm: bytes, rate: int) -> bytes:
        rs = Resampler(rate, self.rate)
        return encode(rs.process(pcm) + rs.flush(), self.encoding)

    def silence(self, ms: int) -> bytes:
        return encode(bytes(2 * self.rate * ms // 1000), self.encoding)

    def pcm(self, wire: bytes) -> np.ndarray:
        return np.frombuffer(decode(wire, self.encoding), dtype="<i2").astype(float)


@dataclass
class CarrierPhone:
    ws: Any
    dialect: Dialect
    stream_id: str = "stream-0001"
    call_id: str = "call-0001"
    account_id: str = "account-0001"
    parameters: dict[str, str] = field(default_factory=dict)
    media: list[tuple[float, bytes]] = field(default_factory=list)
    marks: list[tuple[float, str]] = field(default_factory=list)
    echoed: list[tuple[float, str]] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)
    other: list[Any] = field(default_factory=list)
    close_code: int | None = None
    seq: int = 0
    sent_ms: int = 0
    playout_delay_s: float = 0.0  # network + jitter buffer before the caller hears

    def __post_init__(self) -> None:
        self.closed = asyncio.Event()
        self._playout_end = 0.0
        self._echoes: dict[str, asyncio.Task[None]] = {}
        self._acks: list[asyncio.Future[None]] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def dial(
        cls, url: str, dialect: Dialect, headers: dict[str, str] | None = None, **kw: Any
    ) -> CarrierPhone:
        ws = await websockets.connect(url, additional_headers=headers or {}, max_size=2**20)
        return cls(ws, dialect, **kw)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    # ------------------------------------------------------------------------------ sending

    async def send(self, msg: str | bytes | dict | None) -> None:
        if msg is not None:
            await self.ws.send(json.dumps(msg) if isinstance(msg, dict) else msg)

    async def start(self) -> None:
        await self.send(self.dialect.start(self))

    def media_message(self, payload: bytes) -> str | bytes:
        """One 20 ms media frame in the carrier's shape, stamped `sent_ms` into the stream."""
        msg = self.dialect.media(self, payload)
        self.sent_ms += 20
        return msg

    async def talk(self, wire: bytes) -> None:
        """Send audio in the carrier's codec as 20 ms frames, paced like a phone line."""
        size, began = self.dialect.frame_bytes, time.monotonic()
        for i, off in enumerate(range(0, len(wire), size)):
            await self.send(self.media_message(wire[off : off + size]))
            delay = began + (i + 1) * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # the pace of a phone line, not a wait for luck

    async def dtmf(self, digit: str) -> None:
        await self.send(self.dialect.dtmf(self, digit))

    async def stop(self) -> None:
        msg = self.dialect.stop(self)
        if msg is None:
            await self.ws.close()
        else:
            await self.send(msg)

    # ---------------------------------------------------------------------------- receiving

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self._on_message(self.dialect.outbound(self, raw))
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

    def _on_message(self, out: Out) -> None:
        now = time.monotonic()
        if out.kind == "media":
            self.media.append((now, out.audio))
            self._playout_end = max(self._playout_end, now) + len(out.audio) / (
                self.dialect.frame_bytes * 50
            )
        elif out.kind == "mark":
            self.marks.append((now, out.name))
            due = self._playout_end + self.playout_delay_s
            self._echoes[out.name] = asyncio.ensure_future(self._echo(out.name, due))
        elif out.kind == "clear":
            self.clears.append(now)
            self._playout_end = now
            for name, task in list(self._echoes.items()):
                task.cancel()
                if self.dialect.on_clear == "echo":
                    self._echoes[name] = asyncio.ensure_future(self._echo(name, now))
                else:
                    del self._echoes[name]
            ack = self.dialect.cleared(self)
            if ack is not None:
                self._acks.append(asyncio.ensure_future(self.send(ack)))
        else:
            self.other.append(out.raw)

    async def _echo(self, name: str, due: float) -> None:
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # until the audio before the mark has played
        self._echoes.pop(name, None)
        self.echoed.append((time.monotonic(), name))
        await self.send(self.dialect.echo(self, name))
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
