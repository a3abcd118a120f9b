"""Asterisk AudioSocket end to end over a real TCP socket, with a spec-exact client standing in
for Asterisk: the call's uuid, real recorded speech in 8 kHz slin, the bot's paced reply, DTMF,
barge-in, hang-up both ways, and bad input answered by an error frame and a close."""

from __future__ import annotations

import asyncio
import time
import uuid

import numpy as np

from voicebot.server.tcp_door import TCP_DOORS
from voicebot.telephony.carrier import Dtmf, Media, Start, Stop
from voicebot_plugins.audiosocket.protocol import AudioSocketProtocol

from .audiosocket_client import Asterisk, message, slin_silence, speech_8k
from .support import base_config, serve
from .twilio_e2e_support import call_tasks, record


def config(**over):
    cfg = base_config(**over)
    cfg["pipeline"]["vad_hangover_ms"] = 700  # the recording pauses between words
    cfg["telephony"] = {"audiosocket": {"enabled": True, "port": 0}}
    return cfg


async def dial(server) -> Asterisk:
    return await Asterisk.connect(server.runner.app[TCP_DOORS].ports["audiosocket"])


async def nothing_left(server) -> None:
    await asyncio.wait_for(server.runner.app[TCP_DOORS].idle.wait(), 5)
    assert not server.runtime.calls
    assert call_tasks() == []


def rms(pcm: bytes) -> float:
    return float(np.sqrt(np.mean(np.frombuffer(pcm, "<i2").astype(float) ** 2)))


async def test_audiosocket_call_end_to_end(tmp_path):
    async with serve(tmp_path, config()) as server:
        rec = record(server)
        speech = speech_8k()
        pbx = await dial(server)
        await pbx.hello()

        # the call is the AudioSocket uuid; the greeting comes back as paced 20 ms slin frames
        await rec.wait(lambda: rec.spoken)
        (call,) = rec.calls
        assert call.id == pbx.call_id
        assert call.transport == "audiosocket"
        assert call.variables["call_sid"] == pbx.call_id
        assert rec.spoken[0] == ("Hi.", "Hi.", False)

        t_talk = time.monotonic()
        await pbx.talk(slin_silence(200) + speech + slin_silence(1000))
        await rec.wait(lambda: rec.transcripts)
        assert rec.transcripts == ["what time is it"]

        def said(sentence: str, times: int = 1) -> bool:
            return [" ".join(t.split()) for t, _, cut in rec.spoken if not cut].count(
                sentence
            ) >= times

        await rec.wait(lambda: said("Anything else?"))
        assert said("You said what time is it.")
        frames = [(t, p) for t, p in pbx.audio if t >= t_talk]
        assert {len(p) for _, p in frames} == {320}  # 20 ms of 8 kHz 16-bit
        reply = b"".join(p for _, p in frames)
        assert rms(reply) > 1000
        pcm = np.frombuffer(reply[:8000], "<i2").astype(float)
        assert abs(np.argmax(np.abs(np.fft.rfft(pcm))) * 8000 / len(pcm) - 440) < 10
        assert frames[-1][0] - frames[0][0] > len(frames) * 0.02 - 0.3  # real-time pace

        # a key press is a turn of its own
        await pbx.dtmf("5")
        await rec.wait(lambda: said("You said I pressed 5.") and said("Anything else?", 2))

        # barge-in: speech over the bot stops its audio; "heard" is the paced-send estimate
        await pbx.dtmf("7")
        before = len(pbx.audio)
        await pbx.wait(lambda: len(pbx.audio) > before + 40)  # 0.8 s into the reply
        await pbx.talk(speech[8000:12000])  # 0.25 s of the loud part of the recording
        await rec.wait(lambda: any(cut for _, _, cut in rec.spoken))
        t_cut = time.monotonic()
        ((text, heard, _),) = [s for s in rec.spoken if s[2]]
        text, heard = " ".join(text.split()), " ".join(heard.split())
        assert text.startswith("You said I pressed 7.")
        assert text.startswith(heard) and len(heard) < len(text)
        await pbx.talk(slin_silence(300))
        late = [t for t, _ in pbx.audio if t > t_cut + 0.3]
        assert not late or len(rec.transcripts) == 2  # only the next reply may follow

        # the caller hangs up
        await pbx.hangup()
        await pbx.wait_closed()
        await rec.wait(lambda: rec.ended)
        assert rec.ended == ["remote"]
        await nothing_left(server)


async def test_the_bot_ending_the_call_sends_a_hangup_frame(tmp_path):
    async with serve(tmp_path, config()) as server:
        rec = record(server)
        pbx = await dial(server)
        await pbx.hello()
        await rec.wait(lambda: rec.spoken)
        server.runtime.calls[pbx.call_id].hangup("bot: done")
        await pbx.wait_closed()
        assert pbx.other == [(0x00, b"")]
        assert rec.ended == ["bot: done"]
        await nothing_left(server)


async def test_bad_frames_get_an_error_frame_and_a_close(tmp_path):
    async with serve(tmp_path, config()) as server:
        cases = [
            (message(0x10, bytes(320)), 0x01),  # audio before the uuid
            (message(0x01, b"short"), 0x01),  # a uuid that is not 16 bytes
            (bytes([0x10]) + (60000).to_bytes(2, "big"), 0x02),  # too large: refused unread
            (message(0x12, bytes(640)), 0x03),  # slin 16 kHz: not what AudioSocket() sends
        ]
        for data, code in cases:
            pbx = await dial(server)
            if code in (0x02, 0x03):
                await pbx.hello()
            await pbx.send(data)
            await pbx.wait_closed()
            assert pbx.other == [(0xFF, bytes([code]))], data[:8]
        # after the uuid: an odd-length audio frame and a digit that is not a DTMF key
        for bad in (message(0x10, bytes(321)), message(0x03, b"x")):
            pbx = await dial(server)
            await pbx.hello()
            await pbx.send(bad)
            await pbx.wait_closed()
            assert pbx.other[-1] == (0xFF, b"\x01")
        await nothing_left(server)


async def test_a_connection_that_never_names_its_call_is_dropped(tmp_path):
    cfg = config()
    cfg["security"] = {"limits": {"idle_timeout_s": 1}}
    async with serve(tmp_path, cfg) as server:
        pbx = await dial(server)
        await pbx.wait_closed(5)
        assert pbx.other == [(0xFF, b"\x04")]
        await nothing_left(server)


async def test_the_same_uuid_twice_is_refused(tmp_path):
    async with serve(tmp_path, config()) as server:
        rec = record(server)
        first = await dial(server)
        await first.hello()
        await rec.wait(lambda: rec.calls)
        second = await dial(server)
        second.call_id = first.call_id
        await second.hello()
        await second.wait_closed()
        assert second.other == [(0xFF, b"\x01")]
        assert not first.closed.is_set()
        await first.hangup()
        await first.wait_closed()
        await nothing_left(server)


async def test_disabled_by_default(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        assert server.runner.app[TCP_DOORS].ports == {}


def test_uuid_frame_round_trip_in_any_chunks():
    call = uuid.uuid4()
    wire = (
        message(0x01, call.bytes)
        + message(0x10, bytes(320))
        + message(0x03, b"#")
        + message(0x42, b"?")  # an unknown type is skipped
        + message(0x00)
    )
    for step in (1, 2, 3, 7, len(wire)):
        proto = AudioSocketProtocol()
        events = [e for i in range(0, len(wire), step) for e in proto.feed(wire[i : i + step])]
        assert [type(e) for e in events] == [Start, Media, Dtmf, Stop]
        assert events[0].call_id == str(call)
        assert events[2].digit == "#"
    assert AudioSocketProtocol().render_media(b"\x01\x02") == b"\x10\x00\x02\x01\x02"


async def test_at_capacity_the_call_gets_an_error_frame(tmp_path):
    cfg = config()
    cfg["security"] = {"limits": {"max_calls": 1}}
    async with serve(tmp_path, cfg) as server:
        rec = record(server)
        first = await dial(server)
        await first.hello()
        await rec.wait(lambda: rec.calls)
        second = await dial(server)
        await second.hello()
        await second.wait_closed()
        assert second.other == [(0xFF, b"\x05")]
        await first.hangup()
        await first.wait_closed()
        await nothing_left(server)


async def test_a_peer_outside_allow_from_is_closed_unread_and_logged_once(tmp_path, caplog):
    cfg = config()
    cfg["telephony"]["audiosocket"]["allow_from"] = ["10.0.0.0/8", "fd00::/8"]
    async with serve(tmp_path, cfg) as server:
        rec = record(server)
        for _ in range(2):
            pbx = await dial(server)  # from 127.0.0.1: not on the list
            await pbx.wait_closed()
            assert (pbx.audio, pbx.other) == ([], [])  # no greeting, no error frame: unread
        refused = [
            r for r in caplog.records if "not in telephony.audiosocket.allow_from" in r.getMessage()
        ]
        assert len(refused) == 1 and "127.0.0.1" in refused[0].getMessage()
        assert rec.calls == []
        await nothing_left(server)


async def test_a_peer_inside_allow_from_places_its_call(tmp_path):
    cfg = config()
    cfg["telephony"]["audiosocket"]["allow_from"] = ["127.0.0.0/8"]
    async with serve(tmp_path, cfg) as server:
        rec = record(server)
        pbx = await dial(server)
        await pbx.hello()
        await rec.wait(lambda: rec.spoken)
        await pbx.hangup()
        await pbx.wait_closed()
        await nothing_left(server)
