"""CPU per inbound phone media message, in process: the Twilio serializer's parse, the
connection's limits, and the call's `feed_audio` (budget, μ-law decode, framing, webrtc VAD,
turn-taking) on a real `Call` of a started runtime, without the socket. CPU time, not wall
time, so other processes on the machine disturb it little; min of several repeats.

    python benchmarks/inbound_micro.py
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from voicebot.bench.load import noise_frame  # noqa: E402
from voicebot.config.loader import load_config  # noqa: E402
from voicebot.providers import AudioFormat  # noqa: E402
from voicebot.runtime import Runtime  # noqa: E402
from voicebot.server.limits import ConnectionLimiter  # noqa: E402
from voicebot_plugins.twilio.serializer import TwilioSerializer  # noqa: E402

MESSAGES = 20_000
REPEATS = 5


class NullIO:
    supports_marks = True
    max_message_ms = 1000

    async def send_audio(self, frame: bytes) -> None: ...
    async def send_event(self, event) -> None: ...
    async def send_mark(self, name: str) -> None: ...
    async def clear(self) -> None: ...
    async def transfer(self, target: str) -> bool:
        return False

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


def media_messages(n: int) -> list[str]:
    from voicebot.audio import Resampler, encode

    rs = Resampler(16000, 8000)
    payload = base64.b64encode(encode(rs.process(noise_frame(1)), "mulaw")[:160]).decode()
    return [
        f'{{"event":"media","streamSid":"MZ1","media":{{"track":"inbound","chunk":"{i}",'
        f'"timestamp":"{i * 20}","payload":"{payload}"}}}}'
        for i in range(n)
    ]


async def main() -> None:
    tmp = Path("/tmp") / "voicebot-inbound-micro.yaml"
    tmp.write_text(
        '{"pipeline": {"vad_hangover_ms": 200}, "providers": {"vad": {"use": "webrtc"}, '
        '"stt": {"use": "stub"}, "tts": {"use": "stub"}, "llm": {"use": "stub"}}, '
        '"dialogue": {"mode": "llm", "greeting": ""}}'
    )
    config = load_config(tmp)
    runtime = Runtime(config)
    await runtime.start()
    fmt = AudioFormat(8000, "mulaw")
    call = runtime.new_call(transport="twilio", io=NullIO(), audio_format=fmt)
    task = asyncio.ensure_future(runtime.run_call(call))
    await asyncio.sleep(0.2)
    ser = TwilioSerializer()
    limits = config.security.limits
    limits.max_messages_per_s = 1e9  # measured, not refused
    limits.audio_realtime_factor = 1e6
    limiter = ConnectionLimiter(limits, fmt)
    call._audio_budget.bucket.rate = 1e9
    messages = media_messages(MESSAGES)
    best = {}
    for _ in range(REPEATS):
        for name, step in (
            ("parse", lambda m: ser.parse(m)),
            ("parse + limits", lambda m: limiter.admit(len(ser.parse(m).payload), fmt)),
            (
                "parse + limits + feed_audio",
                lambda m: (
                    call.feed_audio(ser.parse(m).payload) if limiter.admit(1, fmt) is None else None
                ),
            ),
        ):
            t0 = time.process_time()
            for m in messages:
                step(m)
            us = (time.process_time() - t0) / len(messages) * 1e6
            best[name] = min(best.get(name, us), us)
            await asyncio.sleep(0)  # the call's own tasks run between the batches
    assert call.listener._now_ms > 0, "no frame reached the listener"
    call.hangup("done")
    await task
    await runtime.stop()
    print(" | ".join(f"{k}: {v:.2f} µs" for k, v in best.items()), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
