"""A call's state is kept once: by its turn-taker (and the call's own life), with `Call.state`
derived from it, so `/calls`, hooks and status messages cannot disagree."""

from __future__ import annotations

import asyncio

import pytest

from voicebot.call import Call
from voicebot.protocol.events import Response, Status
from voicebot.providers import AudioFormat

from .test_call_rates import runtime_for


class StateRecordingIO:
    """Notes, for every status the call sends, what `call.state` said at that moment."""

    supports_marks = False

    def __init__(self) -> None:
        self.call: Call | None = None
        self.seen: list[tuple[str, str]] = []
        self.responses: list[str] = []
        self.changed = asyncio.Event()

    async def send_audio(self, frame): ...
    async def send_event(self, event):
        if isinstance(event, Status):
            self.seen.append((event.state, self.call.state))
        elif isinstance(event, Response):
            self.responses.append(event.text)
        self.changed.set()

    async def send_mark(self, name): ...
    async def clear(self): ...
    async def transfer(self, target):
        return False

    async def close(self, code=1000, reason=""): ...

    async def until(self, cond) -> None:
        while not cond():
            self.changed.clear()
            await self.changed.wait()


async def test_call_state_is_derived_from_the_turn_taker(tmp_path):
    rt = await runtime_for(tmp_path)
    io = StateRecordingIO()
    call = Call(rt, io, transport="t", audio_format=AudioFormat(16000))
    io.call = call
    assert call.state == "connected"
    with pytest.raises(AttributeError):
        call.state = "speaking"  # nothing may set it: it is read from where it is kept
    running = asyncio.ensure_future(call.run())
    # the greeting is spoken, then the bot listens
    await asyncio.wait_for(io.until(lambda: ("speaking", "speaking") in io.seen), 10)
    await asyncio.wait_for(io.until(lambda: io.seen[-1][0] == "listening" and io.responses), 10)
    assert call.state == "listening"
    call.text("hello there")
    assert call.state == "processing"  # at once: the turn-taker took the turn
    await asyncio.wait_for(io.until(lambda: len(io.responses) == 2), 10)
    call.pause()
    assert call.state == "paused"
    call.resume()
    # every status that names a state agrees with what the call says its state is
    for sent, state in io.seen:
        if sent in ("listening", "processing", "speaking"):
            assert state == sent, io.seen
    call.hangup("test")
    await asyncio.wait_for(running, 10)
    assert call.state == "ended"
    await rt.stop()
