"""Phone calls leave nothing behind: after warm-up, more calls do not grow Python memory."""

from __future__ import annotations

import asyncio

from voicebot.server.telephony import TELEPHONY

from .support import memory_growth_per_call, serve
from .twilio_phone import Phone, mulaw_silence, phone_config


async def one_call(server) -> None:
    phone = await Phone.call(server)
    await phone.connected()
    await phone.start({"From": "+15550001111"})
    for _ in range(10):  # some caller audio through the inbound path (not paced: no need here)
        await phone.ws.send(phone.media_message(mulaw_silence(20)))
    await phone.wait(phone.idle)  # the greeting was played and its mark echoed
    await phone.stop()
    assert await phone.wait_closed() == 1000
    await phone._reader


async def test_memory_does_not_grow_with_phone_calls(tmp_path):
    async with serve(tmp_path, phone_config()) as server:
        telephony = server.runner.app[TELEPHONY]
        for _ in range(15):  # warm-up: imports, caches
            await one_call(server)
        per_call, top = await memory_growth_per_call(
            lambda: one_call(server), 40, lambda: asyncio.wait_for(telephony.idle.wait(), 5)
        )
        assert per_call < 2048, f"{per_call:.0f} bytes per call\n{top}"
        assert not server.runtime.calls and not telephony.streams
