"""Asterisk's chan_websocket end to end over a real WebSocket, with a client written from the
driver's documentation standing in for Asterisk: MEDIA_START, recorded speech as BINARY μ-law,
the reply as one buffered transfer per segment whose MEDIA_BUFFERING_COMPLETED is the mark,
DTMF_END, barge-in answered by FLUSH_MEDIA, the websocket_client.conf password, and hang-up."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import websockets

from voicebot.audio import decode
from voicebot.telephony.carrier import Connected, Dtmf, Mark, Media, Start, UnsupportedFormat
from voicebot_plugins.asterisk_ws.serializer import AsteriskWebSocketSerializer

from .asterisk_ws_client import AsteriskWs, speech_ulaw, ulaw_silence
from .support import base_config, serve
from .twilio_e2e_support import assert_nothing_left, record


def config(**asterisk):
    cfg = base_config()
    cfg["pipeline"]["vad_hangover_ms"] = 700  # the recording pauses between words
    cfg["telephony"] = {"asterisk": {"password": "s3cret", **asterisk}}
    return cfg


@pytest.mark.parametrize("json_control", [False, True])
async def test_chan_websocket_call_end_to_end(tmp_path, json_control):
    fmt = "json" if json_control else "plain-text"
    async with serve(tmp_path, config(control_format=fmt)) as server:
        rec = record(server)
        speech = speech_ulaw()
        pbx = await AsteriskWs.dial(server, "asterisk", "s3cret", json_control=json_control)
        await pbx.media_start()

        # the greeting: START_MEDIA_BUFFERING, BINARY μ-law, STOP_MEDIA_BUFFERING seg-1, and
        # "heard" once its completion came back on the playout clock
        await pbx.wait(lambda: pbx.completed)
        await rec.wait(lambda: rec.spoken)
        (call,) = rec.calls
        assert call.transport == "asterisk"
        assert rec.spoken[0] == ("Hi.", "Hi.", False)
        if json_control:
            assert call.variables["call_sid"] == "1761245643.1"  # channel_id
            assert call.variables["CALLERID(num)"] == "+15550001111"
            assert pbx.commands[0][1] == '{"command": "START_MEDIA_BUFFERING"}'
        else:
            assert call.variables["call_sid"] == pbx.connection_id
            assert pbx.names()[:2] == ["START_MEDIA_BUFFERING", "STOP_MEDIA_BUFFERING seg-1"]

        t_talk = time.monotonic()
        await pbx.talk(ulaw_silence(200) + speech + ulaw_silence(1000))
        await rec.wait(lambda: rec.transcripts)
        assert rec.transcripts == ["what time is it"]

        def said(sentence: str, times: int = 1) -> bool:
            spoken = [" ".join(t.split()) for t, _, cut in rec.spoken if not cut]
            return spoken.count(sentence) >= times

        await rec.wait(lambda: said("Anything else?"))
        assert said("You said what time is it.")
        frames = [p for t, p in pbx.audio if t >= t_talk]
        assert frames and {len(f) for f in frames} == {160}
        pcm = np.frombuffer(decode(b"".join(frames)[:8000], "mulaw"), "<i2").astype(float)
        assert abs(np.argmax(np.abs(np.fft.rfft(pcm))) * 8000 / len(pcm) - 440) < 10
        assert pbx.completed == ["seg-1", "seg-2", "seg-3"]

        await pbx.dtmf("5")
        await rec.wait(lambda: said("You said I pressed 5.") and said("Anything else?", 2))

        # barge-in: FLUSH_MEDIA, and "heard" is what played before it
        await pbx.dtmf("7")
        before = len(pbx.audio)
        await pbx.wait(lambda: len(pbx.audio) > before + 40)
        t_barge = time.monotonic()
        await pbx.talk(speech[4000:6000])  # 0.25 s of the loud part of the recording
        await pbx.wait(lambda: pbx.flushes)
        assert pbx.flushes[0] - t_barge < 0.6
        await rec.wait(lambda: any(cut for _, _, cut in rec.spoken))
        ((text, heard, _),) = [s for s in rec.spoken if s[2]]
        text, heard = " ".join(text.split()), " ".join(heard.split())
        assert text.startswith("You said I pressed 7.")
        assert text.startswith(heard) and len(heard) < len(text)

        await pbx.hangup()
        await rec.wait(lambda: rec.ended)
        assert rec.ended == ["remote"]
        await assert_nothing_left(server)


@pytest.mark.parametrize(("user", "password"), [("", ""), ("asterisk", "wrong")])
async def test_the_password_is_required(tmp_path, user, password):
    async with serve(tmp_path, config(username="asterisk")) as server:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await AsteriskWs.dial(server, user, password)
        assert refused.value.response.status_code == 403


async def test_the_bot_ending_the_call_sends_hangup(tmp_path):
    async with serve(tmp_path, config()) as server:
        rec = record(server)
        pbx = await AsteriskWs.dial(server, "", "s3cret")
        await pbx.media_start()
        await rec.wait(lambda: rec.spoken)
        (call,) = rec.calls
        call.hangup("bot: done")
        await asyncio.wait_for(pbx.closed.wait(), 10)
        assert pbx.names()[-1] == "HANGUP"
        assert pbx.close_code == 1000
        await assert_nothing_left(server)


async def test_an_unsupported_codec_closes_with_1003(tmp_path):
    async with serve(tmp_path, config()) as server:
        pbx = await AsteriskWs.dial(server, "", "s3cret")
        await pbx.media_start(fmt="opus")
        await asyncio.wait_for(pbx.closed.wait(), 10)
        assert pbx.close_code == 1003
        await assert_nothing_left(server)


def test_serializer_parses_the_documented_messages():
    ser = AsteriskWebSocketSerializer()
    start = ser.parse(
        "MEDIA_START connection_id:e226e283 channel:WebSocket/connectionid "
        "channel_id:pbx1-123456789.999 format:slin16 optimal_frame_size:640 ptime:20"
    )
    assert isinstance(start, Start)
    assert (start.stream_id, start.call_id) == ("e226e283", "pbx1-123456789.999")
    assert start.media_format.sample_rate == 16000
    assert start.custom_parameters == {"channel": "WebSocket/connectionid"}
    assert ser.parse("DTMF_END digit:#") == Dtmf("#")
    assert ser.parse("MEDIA_BUFFERING_COMPLETED seg-4") == Mark("seg-4")
    assert ser.parse('{"event": "MEDIA_MARK_PROCESSED", "correlation_id": "m1"}') == Mark("m1")
    assert isinstance(ser.parse("MEDIA_XOFF"), Connected)  # known, nothing to do
    assert ser.parse(b"\xff" * 160) == Media(b"\xff" * 160)
    with pytest.raises(UnsupportedFormat):
        ser.parse("MEDIA_START connection_id:x format:g729")
    assert ser.render_media(b"a") == ["START_MEDIA_BUFFERING", b"a"]
    assert ser.render_media(b"b") == b"b"
    assert ser.render_mark("seg-1") == "STOP_MEDIA_BUFFERING seg-1"
    assert ser.render_clear() == "FLUSH_MEDIA"
