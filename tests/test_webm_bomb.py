"""The Opus decompression bomb (issue 19): decoded audio is budgeted, not only bytes.

A bystander call on the same server measures the event loop: the test client and the server share
one loop, so a ping's round trip includes any time the server spent decoding without yielding.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
import websockets
import yaml

from voicebot.audio import AudioLimitError, InboundAudio
from voicebot.audio.budget import AudioBudget
from voicebot.config import LimitsConfig

from .attacks import opus_bomb_blocks, opus_bomb_webm, webm_header
from .support import Client, base_config, serve
from .test_limits import closed_with, open_ws, still_served
from .test_voice_ws import _no_calls_left

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("av")

WEBM = "?encoding=webm&sample_rate=48000"


class LoopProbe:
    """A bystander pinging all along, one ping per pong, 50 a second; `worst` is the longest gap
    between two pongs. Any time the loop spends without yielding lands in one gap."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.worst = 0.0
        self.pongs = 0
        self._stop = asyncio.Event()
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            sent = time.monotonic()
            await self.client.ws.send(json.dumps({"type": "ping"}))
            await self.client.wait_for(lambda e: e.get("type") == "pong", after=sent)
            now = time.monotonic()
            self.worst, last = max(self.worst, now - last), now
            self.pongs += 1
            await asyncio.sleep(0.02)  # pacing, 50 pings/s: well inside the message budget

    async def stop(self) -> None:
        # not cancel(): Python 3.11's wait_for can swallow a cancel that races its result
        self._stop.set()
        await asyncio.wait_for(self._task, 5)


async def _bomb_refused(c: Client, code: str, reason: str) -> dict:
    close_code, why = await closed_with(c)
    assert (close_code, why) == (1008, reason)
    errors = [e for _, e in c.events if e.get("type") == "error"]
    assert errors and errors[0]["code"] == code, c.types()
    return errors[0]


async def test_one_message_bomb_is_refused_and_the_loop_keeps_running(tmp_path, caplog):
    async with serve(tmp_path, base_config()) as server:
        bystander = await open_ws(server)
        probe = LoopProbe(bystander)
        await bystander.wait_for(lambda e: e.get("type") == "pong")
        bomber = await open_ws(server, WEBM)
        bomb = opus_bomb_webm(1200)  # 20 minutes of audio in 80 KB
        sent = time.monotonic()
        await bomber.ws.send(bomb)
        error = await _bomb_refused(bomber, "audio_too_large", "audio message too large")
        assert "at most 2 s" in error["message"]
        assert time.monotonic() - sent < 2.0
        pongs = probe.pongs
        await bystander.wait_for(lambda e: e.get("type") == "pong", after=time.monotonic())
        await probe.stop()
        assert probe.pongs > pongs
        # unbounded, decoding alone held the loop ~5 s; bounded, ~2 s of audio is ~10 ms of work
        assert probe.worst < 0.5, f"the event loop stalled {probe.worst:.2f} s"
        await still_served(bystander)
        await bystander.close()
        await _no_calls_left(server)
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_small_bombs_within_the_byte_budget_are_rate_limited(tmp_path):
    """1.8 s of audio per 130-byte message: every message is under every byte and size limit,
    so only the decoded-audio budget (1.5× real time, 5 s burst) can stop it."""
    async with serve(tmp_path, base_config()) as server:
        bystander = await open_ws(server)
        probe = LoopProbe(bystander)
        bomber = await open_ws(server, WEBM)
        await bomber.ws.send(webm_header())
        chunk = opus_bomb_blocks(1.8)
        sent = 0
        with contextlib.suppress(websockets.ConnectionClosed):
            for _ in range(200):  # 360 s of audio if nothing stops it
                await bomber.ws.send(chunk)
                sent += 1
                await asyncio.sleep(0)
        error = await _bomb_refused(bomber, "rate_limited", "rate limit exceeded")
        assert "decoded audio" in error["message"] and "1.5× real time" in error["message"]
        assert sent < 20  # the 5 s burst is 3 messages
        await probe.stop()
        assert probe.worst < 0.5, f"the event loop stalled {probe.worst:.2f} s"
        await still_served(bystander)
        await bystander.close()
        await _no_calls_left(server)


async def test_whole_utterance_bomb_is_refused(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        bomber = await open_ws(server, WEBM)
        content = base64.b64encode(opus_bomb_webm(1000)).decode()
        await bomber.ws.send(json.dumps({"type": "audio", "content": content}))
        error = await _bomb_refused(bomber, "audio_too_large", "audio message too large")
        assert "at most 30 s" in error["message"]
        await _no_calls_left(server)


async def test_a_real_whole_utterance_in_webm_is_still_heard(tmp_path):
    from .support import silence, tone
    from .test_webm import webm_opus

    async with serve(tmp_path, base_config()) as server:
        c = await open_ws(server, WEBM)
        data = webm_opus(silence(200, 48000) + tone(800, 48000) + silence(200, 48000))
        await c.ws.send(json.dumps({"type": "audio", "content": base64.b64encode(data).decode()}))
        _, tr = await c.wait_for(lambda e: e.get("type") == "transcript" and e["final"])
        assert tr["text"] == "what time is it"
        await c.close()
        await _no_calls_left(server)


def test_decoding_stops_at_the_cap_with_bounded_memory():
    """A maximum-size message (256 KB, ~1 hour of audio) costs its cap, not its expansion."""
    bomb = opus_bomb_webm(3900)
    assert 250_000 < len(bomb) <= 262_144
    budget = AudioBudget(LimitsConfig(), 30.0)
    inbound = InboundAudio(48000, "webm", 16000)
    tracemalloc.start()
    try:
        with pytest.raises(AudioLimitError) as refused:
            inbound.push(bomb, budget.meter(2.0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.code == "audio_too_large"
    assert peak < 4 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_streamed_audio_bursts_5_s_and_a_whole_utterance_30_s():
    limits = LimitsConfig(audio_realtime_factor=1.5, audio_burst_s=5.0)
    streamed = AudioBudget(limits, 30.0)
    streamed.meter(2.0)(1.9)
    streamed.meter(2.0)(1.9)
    with pytest.raises(AudioLimitError) as refused:
        streamed.meter(2.0)(1.9)
    assert refused.value.code == "rate_limited"

    whole = AudioBudget(limits, 30.0)
    whole.meter(30.0, streamed=False)(29.5)
    with pytest.raises(AudioLimitError) as refused:
        whole.meter(2.0)(0.5)  # the utterance used the budget: streaming must wait for it
    assert refused.value.code == "rate_limited"


def test_one_meter_serves_a_calls_messages_each_with_its_own_cap():
    """A call reuses one meter for its 50 messages a second (`fresh()` per message) instead of
    building one each; the per-message cap and the shared budget hold as before."""
    budget = AudioBudget(LimitsConfig(audio_realtime_factor=1.5, audio_burst_s=5.0), 30.0)
    meter = budget.meter(2.0)
    meter.fresh()(1.5)
    with pytest.raises(AudioLimitError) as refused:
        meter(0.6)  # the same message: over its 2 s
    assert refused.value.code == "audio_too_large"
    assert meter.fresh() is meter
    meter(1.9)  # a new message has its own 2 s
    with pytest.raises(AudioLimitError) as refused:
        meter.fresh()(1.9)  # 1.5 + 1.9 + 1.9 > 5 s of burst: the budget is the call's
    assert refused.value.code == "rate_limited"


def test_the_opus_decoder_is_imported_at_start_up_not_on_the_first_callers_loop(tmp_path):
    """Importing PyAV costs 0.2–0.3 s of CPU: on the event loop at the first WebM call it would
    stall every other call (seen as a 295 ms loop stall in the soak's bomb phase)."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(base_config()))
    code = (
        "import asyncio, sys\n"
        "from voicebot.config import load_config\n"
        "from voicebot.runtime import Runtime\n"
        f"rt = Runtime(load_config({str(cfg)!r}, env={{}}))\n"
        "assert 'av' not in sys.modules\n"
        "async def main():\n"
        "    await rt.start()\n"
        "    await rt.stop()\n"
        "asyncio.run(main())\n"
        "print('av' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
