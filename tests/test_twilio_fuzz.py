"""A live server fuzzed over its Twilio media stream (seeded mutations of real messages): no
connection crashes the handler or leaks a call, and the phone call next door keeps being served."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import string

import websockets

from voicebot.telephony.carrier import TOKEN_PARAMETER

from .support import serve
from .twilio_e2e_support import assert_nothing_left
from .twilio_phone import CALLER, Phone, answer, mulaw_silence, phone_config, stream_of

PAYLOAD = base64.b64encode(mulaw_silence(20)).decode()
VALID = [
    {"event": "connected", "protocol": "Call", "version": "1.0.0"},
    {
        "event": "start",
        "start": {
            "streamSid": "MZf",
            "callSid": "CAf",
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"From": "+1"},
        },
    },
    {"event": "media", "media": {"track": "inbound", "timestamp": "20", "payload": PAYLOAD}},
    {"event": "dtmf", "dtmf": {"digit": "5"}},
    {"event": "mark", "mark": {"name": "seg-1"}},
    {"event": "stop", "stop": {"callSid": "CAf"}},
]
KEYS = ["event", "start", "media", "dtmf", "mark", "stop", "streamSid", "payload", "extra"]
WEIRD = [None, True, -1, 2**70, 1.5, "", "x" * 300, [], {}, [1, [2]], "\u0000", "💥", "!!!"]


def mutate(rng: random.Random) -> str | bytes:
    roll = rng.random()
    if roll < 0.1:
        return rng.randbytes(rng.randrange(1, 2000))
    if roll < 0.25:
        raw = json.dumps(rng.choice(VALID))
        return rng.choice(
            [
                raw[: rng.randrange(len(raw))],
                "[" * 20000,
                "".join(rng.choices(string.printable, k=rng.randrange(300))),
            ]
        )
    msg = json.loads(json.dumps(rng.choice(VALID)))
    for _ in range(rng.randrange(3)):
        event = msg.get("event")
        section = msg.get(event) if isinstance(event, str) else None
        inner = section if isinstance(section, dict) else msg
        key = rng.choice([*KEYS, *inner.keys()])
        if rng.random() < 0.6:
            inner[key] = rng.choice(WEIRD + [m["event"] for m in VALID])
        elif inner:
            inner.pop(rng.choice(list(inner)))
    return json.dumps(msg)


async def test_media_stream_survives_random_and_mutated_messages(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    rng = random.Random(20261121)
    async with serve(tmp_path, phone_config()) as server:
        bystander = await Phone.call(server, stream_sid="MZby")
        await bystander.connected()
        await bystander.start()
        await bystander.wait(bystander.idle)

        async def fuzz_one(seed: int) -> None:
            local = random.Random(seed)
            _, doc = await answer(server, {**CALLER, "CallSid": "CAf"})  # as Twilio would
            start = json.loads(json.dumps(VALID[1]))
            start["start"]["customParameters"][TOKEN_PARAMETER] = stream_of(doc)[1][TOKEN_PARAMETER]
            async with websockets.connect(
                f"{server.url}/twilio/media", max_size=None, max_queue=None
            ) as ws:
                opening = [VALID[0], start] if local.random() < 0.7 else []
                for msg in [*map(json.dumps, opening), *(mutate(local) for _ in range(40))]:
                    try:
                        await ws.send(msg)
                    except websockets.ConnectionClosed:
                        return  # closing on a hostile peer is allowed

        for round_ in range(8):
            seeds = [rng.randrange(2**32) for _ in range(6)]
            await asyncio.gather(*(fuzz_one(s) for s in seeds))
            frames = len(bystander.media)
            await bystander.dtmf(str(round_))  # the call next door is still answered
            await bystander.wait(lambda n=frames: len(bystander.media) > n + 10)
        await bystander.stop()
        await bystander.wait_closed()
        await assert_nothing_left(server)
        assert server.runtime.calls_total > 20  # most fuzzed streams did get as far as a call
    crashes = [r for r in caplog.records if r.exc_info or r.name.startswith(("aiohttp", "asyncio"))]
    assert crashes == [], [r.getMessage() for r in crashes]
