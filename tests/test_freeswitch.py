"""FreeSWITCH's mod_audio_stream end to end over a real WebSocket, with a client written from the
module's README standing in for FreeSWITCH: the JSON metadata first, the caller's speech as
BINARY L16 at 8 or 16 kHz (20 ms or STREAM_BUFFER_SIZE=100 chunks), the reply as paced
`streamAudio` messages, DTMF as a `send_text` message, barge-in that stops the sending, the
bearer token of STREAM_EXTRA_HEADERS, the transfer message, hang-up both ways, and bad input
closed with a code and a reason."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import websockets

from voicebot.telephony.carrier import (
    Dtmf,
    MalformedMessage,
    MalformedStart,
    Media,
    Start,
    Stop,
    TelephonyError,
    UnsupportedFormat,
)
from voicebot_plugins.freeswitch.serializer import FreeswitchOptions, FreeswitchSerializer

from .freeswitch_client import ModAudioStream, silence, speech
from .support import base_config, serve
from .twilio_e2e_support import assert_nothing_left, record

LOOKAHEAD_MS = 100
CHUNK_MS = 100  # pipeline.phone_message_ms


def config(**freeswitch):
    cfg = base_config()
    cfg["pipeline"]["vad_hangover_ms"] = 700  # the recording pauses between words
    cfg["telephony"] = {"freeswitch": {"secret": "s3cret", **freeswitch}}
    return cfg


def said(rec, sentence: str, times: int = 1) -> bool:
    spoken = [" ".join(t.split()) for t, _, cut in rec.spoken if not cut]
    return spoken.count(sentence) >= times


def check_reply(fs: ModAudioStream, since: float, rate: int) -> None:
    """The reply: raw L16 at the stream's rate, in ~100 ms chunks, audible (the stub voice's
    440 Hz), and paced: never more than lookahead + one chunk ahead of real time."""
    played = fs.audio(since)
    assert played and fs.sample_rates == {rate}
    sizes = [len(pcm) for _, pcm in played]
    chunk = 2 * rate * CHUNK_MS // 1000
    assert all(s % 2 == 0 and s <= chunk for s in sizes)
    assert sizes.count(chunk) > len(sizes) // 2  # chunks, not 20 ms files
    pcm = np.frombuffer(b"".join(p for _, p in played), "<i2").astype(float)
    assert float(np.sqrt(np.mean(pcm**2))) > 1000
    window = pcm[:rate]
    assert abs(np.argmax(np.abs(np.fft.rfft(window))) * rate / len(window) - 440) < 10
    t0, sent = played[0][0], 0.0
    for t, p in played:
        sent += len(p) / (2 * rate)
        ahead = sent - (t - t0)
        assert ahead <= (LOOKAHEAD_MS + CHUNK_MS) / 1000 + 0.1, (ahead, sent)
    assert played[-1][0] - t0 > sent - 0.5  # paced over the reply's length, not all at once


@pytest.mark.parametrize(("rate", "buffer_ms"), [(8000, 20), (16000, 20), (8000, 100)])
async def test_mod_audio_stream_call_end_to_end(tmp_path, rate, buffer_ms):
    async with serve(tmp_path, config()) as server:
        rec = record(server)
        voice = speech(rate)
        fs = await ModAudioStream.start(server, rate=rate, buffer_ms=buffer_ms)
        meta = {"sample_rate": f"{rate // 1000}k"} if rate != 8000 else {}
        await fs.send_text(fs.metadata(**meta))

        # the greeting, "heard" by the paced-send clock (no mark to wait for)
        await rec.wait(lambda: rec.spoken)
        (call,) = rec.calls
        assert call.transport == "freeswitch"
        assert call.variables["call_sid"] == fs.uuid
        assert (call.variables["From"], call.variables["To"]) == ("+15550001111", "1000")
        assert rec.spoken[0] == ("Hi.", "Hi.", False)

        t_talk = time.monotonic()
        await fs.talk(silence(200, rate) + voice + silence(1000, rate))
        await rec.wait(lambda: rec.transcripts)
        assert rec.transcripts == ["what time is it"]
        await rec.wait(lambda: said(rec, "Anything else?"))
        assert said(rec, "You said what time is it.")
        check_reply(fs, t_talk, rate)

        # a key press, forwarded by the dialplan hook as a send_text message
        await fs.dtmf("5")
        await rec.wait(
            lambda: said(rec, "You said I pressed 5.") and said(rec, "Anything else?", 2)
        )

        # barge-in: the caller talks over the bot, which stops sending at once
        await fs.dtmf("7")
        before = len(fs.played)
        await fs.wait(lambda: len(fs.played) > before + 8)  # 0.8 s into the reply
        await fs.talk(voice[rate : rate * 3 // 2])  # 0.25 s of the loud part of the recording
        await rec.wait(lambda: any(cut for _, _, cut in rec.spoken))
        t_cut = time.monotonic()
        ((text, heard, _),) = [s for s in rec.spoken if s[2]]
        text, heard = " ".join(text.split()), " ".join(heard.split())
        assert text.startswith("You said I pressed 7.")
        assert text.startswith(heard) and len(heard) < len(text)
        await fs.talk(silence(300, rate))
        late = [t for t, _ in fs.played if t > t_cut + 0.1]
        assert not late or len(rec.transcripts) == 2  # only the next reply may follow

        # FreeSWITCH hangs up: `uuid_audio_stream stop` (or the channel's end) closes the socket
        await fs.stop()
        await rec.wait(lambda: rec.ended)
        assert rec.ended == ["remote"]
        await assert_nothing_left(server)


async def test_the_stop_text_ends_the_call(tmp_path):
    async with serve(tmp_path, config()) as server:
        rec = record(server)
        fs = await ModAudioStream.start(server, path="/telephony/freeswitch/media")
        await fs.send_text(fs.metadata())
        await rec.wait(lambda: rec.calls)
        await fs.stop('{"event":"stop"}')
        await rec.wait(lambda: rec.ended)
        assert rec.ended == ["remote"]
        await assert_nothing_left(server)


async def test_the_bot_ending_the_call_closes_the_stream(tmp_path):
    async with serve(tmp_path, config()) as server:
        rec = record(server)
        fs = await ModAudioStream.start(server)
        await fs.send_text(fs.metadata())
        await rec.wait(lambda: rec.spoken)
        (call,) = rec.calls
        call.hangup("bot: done")
        assert await fs.wait_closed() == 1000
        assert fs.events == []  # nothing but audio before the close
        assert rec.ended == ["bot: done"]
        await assert_nothing_left(server)


async def test_a_transfer_is_a_json_message_then_the_close(tmp_path):
    async with serve(tmp_path, config()) as server:
        rec = record(server)
        fs = await ModAudioStream.start(server)
        await fs.send_text(fs.metadata())
        await rec.wait(lambda: rec.spoken)
        (call,) = rec.calls
        assert await call.io.transfer("sip:agent@pbx.example.com") is True
        await fs.wait(lambda: fs.events)
        assert fs.events == [{"event": "transfer", "target": "sip:agent@pbx.example.com"}]
        call.hangup("transferred")
        assert await fs.wait_closed() == 1000
        assert fs.events == [{"event": "transfer", "target": "sip:agent@pbx.example.com"}]
        await assert_nothing_left(server)


@pytest.mark.parametrize("token", [None, "wrong", ""])
async def test_a_missing_or_wrong_secret_gets_401(tmp_path, token):
    async with serve(tmp_path, config()) as server:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await ModAudioStream.start(server, token=token)
        response = refused.value.response
        assert response.status_code == 401
        assert json.loads(response.body)["code"] == "unauthorized"
        await assert_nothing_left(server)


@pytest.mark.parametrize(
    ("first", "code", "reason"),
    [
        ("not json", 1007, "metadata must be a JSON object"),
        ('{"from":"+1555"}', 1007, "metadata needs a 'call_id'"),
        (b"\x00\x00" * 160, 1007, "audio before the metadata"),
        ('{"call_id":"a","mix_type":"stereo"}', 1003, "start the stream with mono"),
        ('{"call_id":"a","sample_rate":"44k"}', 1003, "use 8k or 16k"),
    ],
)
async def test_bad_or_missing_metadata_is_closed_with_a_reason(tmp_path, first, code, reason):
    async with serve(tmp_path, config()) as server:
        rec = record(server)
        fs = await ModAudioStream.start(server)
        await fs.send(first)
        assert await fs.wait_closed() == code
        assert reason in fs.close_reason
        assert rec.calls == []
        await assert_nothing_left(server)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [(bytes(321), "odd"), (bytes(8002), "over 500 ms at 8000 Hz")],
)
async def test_an_odd_or_oversized_frame_is_closed_with_a_reason(tmp_path, frame, reason):
    async with serve(tmp_path, config()) as server:
        rec = record(server)
        fs = await ModAudioStream.start(server)
        await fs.send_text(fs.metadata())
        await rec.wait(lambda: rec.calls)
        await fs.send(bytes(4000))  # 250 ms: STREAM_BUFFER_SIZE=250 is fine
        await fs.send(frame)
        assert await fs.wait_closed() == 1003
        assert reason in fs.close_reason
        await rec.wait(lambda: rec.ended)
        await assert_nothing_left(server)


def test_serializer_reads_and_writes_the_documented_messages():
    ser = FreeswitchSerializer()
    ser.configure(FreeswitchOptions(sample_rate=16000, lookahead_ms=160))
    assert ser.playback_lead_ms == 160
    start = ser.parse('{"call_id":"u-1","variables":{"lang":"en","n":2}}')
    assert isinstance(start, Start)
    assert (start.call_id, start.media_format.sample_rate) == ("u-1", 16000)
    assert start.custom_parameters == {"lang": "en", "n": "2"}
    ser.bind(start)
    assert ser.parse(b"\x01\x00" * 320) == Media(b"\x01\x00" * 320)
    assert ser.parse('{"event":"dtmf","digit":"#"}') == Dtmf("#")
    assert isinstance(ser.parse('{"event":"stop"}'), Stop)
    with pytest.raises(MalformedMessage):
        ser.parse('{"event":"dtmf","digit":"55"}')
    with pytest.raises(MalformedMessage):
        ser.parse('{"digit":"5"}')
    assert json.loads(ser.render_media(b"\x01\x02")) == {
        "type": "streamAudio",
        "data": {"audioDataType": "raw", "sampleRate": 16000, "audioData": "AQI="},
    }
    assert ser.render_mark("seg-1") == [] and ser.render_clear() == []
    assert json.loads(ser.render_transfer("1000")) == {"event": "transfer", "target": "1000"}
    with pytest.raises(TelephonyError):
        ser.render_transfer("1000 XML other")
    fresh = FreeswitchSerializer()
    with pytest.raises(MalformedStart):
        fresh.parse('{"call_id":"has space"}')
    with pytest.raises(UnsupportedFormat):
        fresh.parse('{"call_id":"x","mix_type":"mixed"}')
    with pytest.raises(ValueError, match="must start with '/'"):
        FreeswitchOptions(path="freeswitch")
    # a configured section transfers (through the dialplan's hook); an absent one does not
    assert FreeswitchSerializer.transfer_problem(FreeswitchOptions(secret="s")) is None
    assert FreeswitchSerializer.transfer_problem(FreeswitchOptions()) is not None


def test_the_secret_is_a_bearer_token():
    options = FreeswitchOptions(secret="s3cret")
    auth = FreeswitchSerializer.authenticate
    assert auth(options, "", {"Authorization": "Bearer s3cret"}) is True
    assert auth(options, "", {"Authorization": "Bearer s3cre"}) is False
    assert auth(options, "", {"Authorization": "Basic s3cret"}) is False
    assert auth(options, "", {}) is False
    assert auth(FreeswitchOptions(), "", {}) is None
