"""A call needs only what `CallServices` names from the process, not a whole runtime."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from types import SimpleNamespace

import voicebot.call
from voicebot.call import Call
from voicebot.protocol.events import Response
from voicebot.providers import AudioFormat

from .test_call_rates import runtime_for


class RecordingIO:
    supports_marks = False

    def __init__(self) -> None:
        self.events: list = []  # the typed events the call emits
        self.changed = asyncio.Event()

    async def send_audio(self, frame): ...
    async def send_event(self, event):
        self.events.append(event)
        self.changed.set()

    async def send_mark(self, name): ...
    async def clear(self): ...
    async def transfer(self, target):
        return False

    async def close(self, code=1000, reason=""): ...


def test_the_call_package_never_imports_the_runtime():
    """Not even for type hints: that import was the call ↔ runtime cycle."""
    for path in Path(voicebot.call.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert "runtime" not in (node.module or ""), f"{path.name} imports the runtime"


async def test_a_call_runs_on_its_services_alone(tmp_path):
    rt = await runtime_for(tmp_path)
    services = SimpleNamespace(
        config=rt.config,
        providers=rt.providers,
        deadlines=rt.deadlines,
        workers=rt.workers,
        hook=rt.hook,
        new_dialogue=rt.new_dialogue,
        record_error=rt.record_error,
    )
    io = RecordingIO()
    call = Call(services, io, transport="t", audio_format=AudioFormat(16000))
    running = asyncio.ensure_future(call.run())

    async def reply_with(word: str) -> None:
        while not any(isinstance(e, Response) and word in e.text for e in io.events):
            io.changed.clear()
            await io.changed.wait()

    await asyncio.wait_for(reply_with(rt.config.dialogue.greeting.split()[0]), 10)
    call.text("hello there")
    await asyncio.wait_for(reply_with("hello there"), 10)
    call.hangup("test")
    await asyncio.wait_for(running, 10)
    assert call.state == "ended" and call.turns_count == 1
    await rt.stop()
