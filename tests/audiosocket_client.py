"""An Asterisk AudioSocket peer written from the protocol spec alone
(docs.asterisk.org/Configuration/Channel-Drivers/AudioSocket/), independent of the plugin's code:
what `AudioSocket(uuid,host:port)` does, over a real TCP socket. Asterisk is not installable on
this machine, so this client stands in for it.

Each message: type (1 byte), payload length (2 bytes, big-endian), payload. 0x00 hang-up, 0x01 the
16-byte binary UUID, 0x03 one ASCII DTMF digit, 0x10 8 kHz 16-bit little-endian mono slin, 0xff an
error with an optional code.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import wave
from pathlib import Path

from voicebot.audio import Resampler

SPEECH = Path(__file__).parent.parent / "benchmarks" / "data" / "speech"


def speech_8k(name: str = "goforward.wav") -> bytes:
    """Recorded human speech, as Asterisk would send it: 8 kHz slin."""
    with wave.open(str(SPEECH / name)) as w:
        pcm, rate = w.readframes(w.getnframes()), w.getframerate()
    rs = Resampler(rate, 8000)
    return rs.process(pcm) + rs.flush()


def slin_silence(ms: int) -> bytes:
    return bytes(16 * ms)


def message(kind: int, payload: bytes = b"") -> bytes:
    return bytes([kind]) + len(payload).to_bytes(2, "big") + payload


class Asterisk:
    """One AudioSocket connection: records every message the server sends, with arrival times."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.call_id = str(uuid.uuid4())
        self.audio: list[tuple[float, bytes]] = []
        self.other: list[tuple[int, bytes]] = []  # (type, payload) of every non-audio message
        self.closed = asyncio.Event()
        self._changed = asyncio.Condition()
        self._task = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, port: int) -> Asterisk:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def _read(self) -> None:
        try:
            while True:
                header = await self.reader.readexactly(3)
                kind, length = header[0], int.from_bytes(header[1:], "big")
                payload = await self.reader.readexactly(length)
                if kind == 0x10:
                    self.audio.append((time.monotonic(), payload))
                else:
                    self.other.append((kind, payload))
                async with self._changed:
                    self._changed.notify_all()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed.set()
            async with self._changed:
                self._changed.notify_all()

    async def wait(self, pred, timeout: float = 10.0) -> None:
        async def check() -> None:
            async with self._changed:
                while not pred():
                    if self.closed.is_set():
                        raise AssertionError(f"connection closed; got {self.other}")
                    await self._changed.wait()

        await asyncio.wait_for(check(), timeout)

    async def wait_closed(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.closed.wait(), timeout)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def hello(self) -> None:
        await self.send(message(0x01, uuid.UUID(self.call_id).bytes))

    async def talk(self, pcm: bytes) -> None:
        """20 ms slin frames at real-time pace, like Asterisk."""
        start = time.monotonic()
        for i, off in enumerate(range(0, len(pcm), 320)):
            await self.send(message(0x10, pcm[off : off + 320]))
            delay = start + (i + 1) * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing like a phone line, not waiting for luck

    async def dtmf(self, digit: str) -> None:
        await self.send(message(0x03, digit.encode("ascii")))

    async def hangup(self) -> None:
        await self.send(message(0x00))

    async def close(self) -> None:
        self.writer.close()
        await self._task
