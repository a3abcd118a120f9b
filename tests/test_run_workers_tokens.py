"""`voicebot run --workers 2` answering phone calls: a Twilio voice webhook and its media stream
are two connections the kernel hashes to workers independently, so the stream often reaches the
worker that did not mint its one-time token. Every call must still start, and a token still
works once only, on any worker."""

from __future__ import annotations

import asyncio
import itertools

import aiohttp
import pytest

from .test_run_workers import get, start, stop
from .twilio_phone import CALLER, Phone, stream_of

pytestmark = pytest.mark.slow

#: Calls tried before giving up on seeing a stream reach the other worker: each one does with
#: odds 1/2, so 24 all missing has odds of 2**-24.
MAX_CALLS = 24
#: And at least this many calls, every one of which must start.
MIN_CALLS = 8


class Output:
    """The server's merged stdout/stderr, read as it comes (the workers log there)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.ensure_future(self._read(proc))

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        while line := await proc.stdout.readline():
            self.lines.append(line.decode(errors="replace"))
            async with self._changed:
                self._changed.notify_all()

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    async def wait(self, pred, within_s: float = 10.0) -> None:
        async def check() -> None:
            async with self._changed:
                await self._changed.wait_for(pred)

        await asyncio.wait_for(check(), within_s)

    async def aclose(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def voice_webhook(port: int, call_sid: str) -> dict[str, str]:
    """Twilio's answer webhook, on a new connection: the `<Stream>` parameters it answered."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://127.0.0.1:{port}/twilio/voice", data={**CALLER, "CallSid": call_sid}
        ) as r,
    ):
        assert r.status == 200, await r.text()
        return stream_of(await r.text())[1]


async def stream(port: int, call_sid: str, parameters: dict[str, str]) -> Phone:
    phone = await Phone.dial(
        f"ws://127.0.0.1:{port}/twilio/media", call_sid=call_sid, stream_sid="MZ" + call_sid
    )
    phone.parameters = parameters  # the token exactly as the TwiML said
    await phone.connected()
    await phone.start()
    return phone


async def test_every_call_starts_whichever_worker_its_stream_reaches(tmp_path):
    proc, port = await start(tmp_path, telephony={"twilio": {"allow_unsigned": True}})
    out = Output(proc)
    phones: list[Phone] = []
    tokens: list[dict[str, str]] = []
    try:
        for n in itertools.count(1):
            call_sid = f"CA{n:04d}"
            parameters = await voice_webhook(port, call_sid)
            phone = await stream(port, call_sid, parameters)
            phones.append(phone)
            tokens.append(parameters)
            await phone.wait(lambda phone=phone: phone.media)  # the greeting: the call started
            crossed = out.count("handed to a sibling")
            if n >= MIN_CALLS and crossed:
                break
            assert n < MAX_CALLS, f"{n} streams all reached the worker of their webhook"
        listing = await get(port, "/calls")
        assert listing["active_calls"] == len(phones)
        assert len({c["pid"] for c in listing["calls"]}) == 2  # both workers hold calls

        # every used token is refused, on whichever worker its replay reaches
        for n, parameters in enumerate(tokens, 1):
            replay = await stream(port, f"CA{n:04d}", parameters)
            assert await replay.wait_closed() == 1008
            assert replay.ws.close_reason == "stream token missing, used or expired"
        assert (await get(port, "/calls"))["active_calls"] == len(phones)
        for phone in phones:
            await phone.stop()
            await phone.wait_closed()
    finally:
        await stop(proc)
        await out.aclose()
