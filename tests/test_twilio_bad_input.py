"""Bad input on the Twilio media stream: each case is handled cleanly, the server goes on serving,
and no call or task outlives its connection."""

from __future__ import annotations

import base64
import contextlib
import json
import logging

import websockets

from .support import serve
from .twilio_e2e_support import assert_nothing_left, record, synthesize
from .twilio_phone import Phone, mulaw_silence, phone_config


async def dial(server) -> Phone:
    return await Phone.call(server)


async def test_media_before_start_is_logged_and_ignored(tmp_path, caplog):
    async with serve(tmp_path, phone_config()) as server:
        rec = record(server)
        phone = await dial(server)
        await phone.connected()
        with caplog.at_level(logging.ERROR):
            for _ in range(3):
                await phone.ws.send(phone.media_message(mulaw_silence(20)))
            await phone.dtmf("1")
            await phone.start()
            await phone.wait(phone.idle)  # the call came up and greeted
        assert sum("before start" in r.getMessage() for r in caplog.records) == 1
        assert len(rec.calls) == 1 and rec.calls[0].turns_count == 0  # the early dtmf was dropped
        await phone.stop()
        assert await phone.wait_closed() == 1000
        await assert_nothing_left(server)


async def test_invalid_base64_and_unknown_events_do_not_end_the_call(tmp_path, caplog):
    async with serve(tmp_path, phone_config()) as server:
        rec = record(server)
        speech = await synthesize(server.runtime, "what time is it")
        phone = await dial(server)
        await phone.connected()
        await phone.start()
        await phone.wait(phone.idle)
        with caplog.at_level(logging.INFO):
            await phone.send({"event": "media", "media": {"payload": "%%% not base64 %%%"}})
            await phone.send({"event": "transcription", "text": "hello"})
            await phone.send("{ not json")
            await phone.send({"event": "dtmf", "dtmf": {"digit": "99"}})
            await phone.talk(mulaw_silence(100) + speech + mulaw_silence(500))
            await rec.wait(lambda: rec.transcripts)
        assert rec.transcripts == ["what time is it"]  # the call went on
        messages = [r.getMessage() for r in caplog.records]
        assert any("not valid base64" in m for m in messages)
        assert any("unknown event 'transcription'" in m for m in messages)
        await phone.stop()
        await phone.wait_closed()
        await assert_nothing_left(server)


async def test_one_megabyte_payload_closes_with_1009_and_the_server_survives(tmp_path):
    async with serve(tmp_path, phone_config()) as server:
        rec = record(server)
        phone = await dial(server)
        await phone.connected()
        await phone.start()
        await phone.wait(lambda: phone.media)
        await phone.ws.send(phone.media_message(bytes(1024 * 1024)))
        assert await phone.wait_closed() == 1009
        await rec.wait(lambda: rec.ended)
        await assert_nothing_left(server)
        # the next call is served as usual
        other = await dial(server)
        await other.connected()
        await other.start()
        await other.wait(other.idle)
        await other.stop()
        assert await other.wait_closed() == 1000
        await assert_nothing_left(server)


async def test_stream_that_ends_without_stop_releases_the_call(tmp_path):
    async with serve(tmp_path, phone_config()) as server:
        rec = record(server)
        phone = await dial(server)
        await phone.connected()
        await phone.start()
        await phone.wait(lambda: phone.media)  # mid-greeting
        phone.ws.transport.abort()  # the line drops: no stop, no close frame
        await rec.wait(lambda: rec.ended)
        assert rec.ended == ["remote"]
        await assert_nothing_left(server)

        clean = await dial(server)  # a clean WebSocket close without `stop`
        await clean.connected()
        await clean.start()
        await clean.wait(lambda: clean.media)
        await clean.close()
        await rec.wait(lambda: len(rec.ended) == 2)
        await assert_nothing_left(server)


async def test_call_that_never_sends_audio_times_out(tmp_path):
    cfg = phone_config(security={"limits": {"idle_timeout_s": 1}})
    async with serve(tmp_path, cfg) as server:
        rec = record(server)
        phone = await dial(server)
        await phone.connected()
        await phone.start()
        assert await phone.wait_closed(within_s=5) == 4008
        assert "idle" in rec.ended[0]
        await assert_nothing_left(server)


async def test_stream_that_never_starts_is_closed(tmp_path):
    cfg = phone_config(security={"limits": {"idle_timeout_s": 1}})
    async with serve(tmp_path, cfg) as server:
        phone = await dial(server)
        await phone.connected()
        assert await phone.wait_closed(within_s=5) == 1008
        assert server.runtime.calls_total == 0
        await assert_nothing_left(server)


async def test_unsupported_media_format_is_refused(tmp_path):
    async with serve(tmp_path, phone_config()) as server:
        phone = await dial(server)
        await phone.connected()
        await phone.start(fmt={"encoding": "audio/opus", "sampleRate": 48000, "channels": 1})
        assert await phone.wait_closed() == 1003
        assert server.runtime.calls_total == 0


async def test_a_flood_of_malformed_messages_closes_with_1008(tmp_path):
    async with serve(tmp_path, phone_config()) as server:
        rec = record(server)
        phone = await dial(server)
        await phone.connected()
        await phone.start()
        bad = json.dumps(
            {"event": "media", "media": {"payload": base64.b64encode(b"x").decode()[:-1]}}
        )
        for _ in range(60):
            await phone.send(bad)
        assert await phone.wait_closed() == 1008
        await rec.wait(lambda: rec.ended)
        await assert_nothing_left(server)


async def test_a_flood_of_messages_is_rate_limited_with_1008(tmp_path, caplog):
    async with serve(tmp_path, phone_config()) as server:
        rec = record(server)
        phone = await dial(server)
        await phone.connected()
        await phone.start()
        frame = phone.media_message(mulaw_silence(20))
        with caplog.at_level(logging.WARNING):
            with contextlib.suppress(websockets.ConnectionClosed):
                for _ in range(1000):  # 20 s of audio at once: far over 200 messages/s
                    await phone.ws.send(frame)
            assert await phone.wait_closed() == 1008
        await rec.wait(lambda: rec.ended)
        assert rec.ended == ["rate limited"]
        assert any("rate limit" in r.getMessage() for r in caplog.records)
        await assert_nothing_left(server)
