"""Asterisk's `chan_websocket` as a far end, written from the driver's documentation
(docs.asterisk.org/Configuration/Channel-Drivers/WebSocket/), independent of the plugin's code:
what `Dial(WebSocket/connection1/c(ulaw))` does against our media WebSocket. Asterisk is not
installable on this machine, so this client stands in for it.

BINARY messages are raw audio; TEXT messages are control, plain text (`MEDIA_START
connection_id:… channel:… format:ulaw optimal_frame_size:160`, `DTMF_END digit:5`) or JSON. Audio
between `START_MEDIA_BUFFERING` and `STOP_MEDIA_BUFFERING <id>` plays on a real-time clock, and
`MEDIA_BUFFERING_COMPLETED <id>` goes back when its last frame has played; `FLUSH_MEDIA` drops
the queue and no completion follows.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

import websockets

from voicebot.audio import encode

from .audiosocket_client import speech_8k

FRAME = 160  # 20 ms of μ-law


def speech_ulaw() -> bytes:
    return encode(speech_8k(), "mulaw")


def ulaw_silence(ms: int) -> bytes:
    return encode(bytes(16 * ms), "mulaw")


class AsteriskWs:
    def __init__(self, ws: Any, json_control: bool = False) -> None:
        self.ws = ws
        self.json = json_control
        self.connection_id = str(uuid.uuid4())
        self.audio: list[tuple[float, bytes]] = []
        self.commands: list[tuple[float, str]] = []  # every TEXT message, as received
        self.completed: list[str] = []  # MEDIA_BUFFERING_COMPLETED ids sent back
        self.flushes: list[float] = []
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self._playout_end = 0.0
        self._pending: list[asyncio.Task[None]] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.ensure_future(self._read())

    @classmethod
    async def dial(
        cls, server: Any, user: str = "", password: str = "", json_control: bool = False
    ) -> AsteriskWs:
        headers = {}
        if password:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        ws = await websockets.connect(
            f"{server.url}/telephony/asterisk/media",
            additional_headers=headers,
            subprotocols=["media"],  # websocket_client.conf `protocols = media`
        )
        assert ws.subprotocol == "media"
        return cls(ws, json_control)

    def names(self) -> list[str]:
        return [c for _, c in self.commands]

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                now = time.monotonic()
                if isinstance(msg, bytes):
                    self.audio.append((now, msg))
                    self._playout_end = max(self._playout_end, now) + len(msg) / 8000
                else:
                    self.commands.append((now, msg))
                    self._control(now, msg)
                async with self._changed:
                    self._changed.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()
            async with self._changed:
                self._changed.notify_all()

    def _control(self, now: float, msg: str) -> None:
        if self.json:
            parsed = json.loads(msg)
            command, correlation = parsed["command"], parsed.get("correlation_id")
        else:
            command, _, correlation = msg.partition(" ")
        if command == "STOP_MEDIA_BUFFERING":
            delay = max(0.0, self._playout_end - now)
            self._pending.append(asyncio.ensure_future(self._complete(correlation or "", delay)))
        elif command == "FLUSH_MEDIA":
            self.flushes.append(now)
            self._playout_end = now
            for task in self._pending:
                task.cancel()
            self._pending.clear()

    async def _complete(self, correlation: str, delay: float) -> None:
        await asyncio.sleep(delay)  # the playout clock: the audio takes this long to play
        self.completed.append(correlation)
        async with self._changed:
            self._changed.notify_all()
        if self.json:
            await self.send({"event": "MEDIA_BUFFERING_COMPLETED", "correlation_id": correlation})
        else:
            await self.send(f"MEDIA_BUFFERING_COMPLETED {correlation}".strip())

    async def send(self, msg: dict[str, Any] | str | bytes) -> None:
        try:
            await self.ws.send(json.dumps(msg) if isinstance(msg, dict) else msg)
        except websockets.ConnectionClosed:
            pass

    async def media_start(self, fmt: str = "ulaw") -> None:
        if self.json:
            await self.send(
                {
                    "event": "MEDIA_START",
                    "connection_id": self.connection_id,
                    "channel": f"WebSocket/connection1/0x{id(self):x}",
                    "channel_id": "1761245643.1",
                    "format": fmt,
                    "optimal_frame_size": 160,
                    "ptime": 20,
                    "channel_variables": {"CALLERID(num)": "+15550001111"},
                }
            )
        else:
            await self.send(
                f"MEDIA_START connection_id:{self.connection_id} channel:WebSocket/connection1/"
                f"0x{id(self):x} format:{fmt} optimal_frame_size:160"
            )

    async def talk(self, mulaw: bytes) -> None:
        """160-byte BINARY frames every 20 ms, as the driver sends them."""
        start = time.monotonic()
        for i, off in enumerate(range(0, len(mulaw), FRAME)):
            await self.send(mulaw[off : off + FRAME])
            delay = start + (i + 1) * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # the pace of a phone line, not a wait for luck

    async def dtmf(self, digit: str) -> None:
        if self.json:
            await self.send({"event": "DTMF_END", "digit": digit})
        else:
            await self.send(f"DTMF_END digit:{digit}")

    async def wait(self, pred, timeout: float = 10.0) -> None:
        async def check() -> None:
            async with self._changed:
                while not pred():
                    if self.closed.is_set():
                        raise AssertionError(f"closed ({self.close_code}); {self.names()[-5:]}")
                    await self._changed.wait()

        await asyncio.wait_for(check(), timeout)

    async def hangup(self) -> None:
        """Asterisk hangs up the channel by closing the WebSocket."""
        for task in self._pending:
            task.cancel()
        await self.ws.close()
        await self._task
