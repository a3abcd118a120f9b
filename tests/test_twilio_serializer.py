"""The Twilio media-stream wire format, parsed and rendered without sockets."""

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicebot.telephony.serializer import (
    Connected,
    Dtmf,
    MalformedMessage,
    Mark,
    Media,
    MediaFormat,
    NotStarted,
    Start,
    Stop,
    TelephonyError,
    UnknownEvent,
    UnsupportedFormat,
)
from voicebot_plugins.twilio.serializer import TwilioSerializer

START = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "accountSid": "AC123",
        "streamSid": "MZ123",
        "callSid": "CA123",
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"From": "+15550001111", "To": "+15550002222"},
    },
    "streamSid": "MZ123",
}


def parse(msg: object) -> object:
    return TwilioSerializer().parse(json.dumps(msg))


def test_connected():
    assert parse({"event": "connected", "protocol": "Call", "version": "1.0.0"}) == Connected(
        "Call", "1.0.0"
    )


def test_start():
    start = parse(START)
    assert start == Start(
        stream_id="MZ123",
        call_id="CA123",
        account_id="AC123",
        custom_parameters={"From": "+15550001111", "To": "+15550002222"},
        media_format=MediaFormat("mulaw", 8000, 1),
        tracks=("inbound",),
    )
    assert start.media_format.audio_format().encoding == "mulaw"


def test_start_honours_declared_format():
    msg = json.loads(json.dumps(START))
    msg["start"]["mediaFormat"] = {"encoding": "audio/x-alaw", "sampleRate": 16000, "channels": 1}
    assert parse(msg).media_format == MediaFormat("alaw", 16000, 1)


@pytest.mark.parametrize(
    "fmt",
    [
        {"encoding": "audio/opus", "sampleRate": 8000, "channels": 1},
        {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 2},
        {"encoding": "audio/x-mulaw", "sampleRate": 96000, "channels": 1},
    ],
)
def test_start_with_unsupported_format(fmt):
    msg = json.loads(json.dumps(START))
    msg["start"]["mediaFormat"] = fmt
    with pytest.raises(UnsupportedFormat):
        parse(msg)


def test_media():
    payload = bytes(range(160))
    msg = {
        "event": "media",
        "sequenceNumber": "3",
        "media": {
            "track": "inbound",
            "chunk": "1",
            "timestamp": "5",
            "payload": base64.b64encode(payload).decode(),
        },
        "streamSid": "MZ123",
    }
    assert parse(msg) == Media(payload, "inbound", 5)


def test_dtmf_mark_stop():
    assert parse({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": "#"}}) == Dtmf("#")
    assert parse({"event": "mark", "mark": {"name": "seg-1"}}) == Mark("seg-1")
    assert parse({"event": "stop", "stop": {"accountSid": "AC1", "callSid": "CA1"}}) == Stop("CA1")


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2]",
        '{"no_event": 1}',
        '{"event": 5}',
        '{"event": "media"}',
        '{"event": "media", "media": {"payload": "!!!notbase64"}}',
        '{"event": "media", "media": {"payload": 12}}',
        '{"event": "dtmf", "dtmf": {"digit": "55"}}',
        '{"event": "dtmf", "dtmf": {"digit": "x"}}',
        '{"event": "mark", "mark": {}}',
        '{"event": "start", "start": {"callSid": "CA1"}}',
        '{"event": "start", "start": {"streamSid": "MZ", "customParameters": []}}',
    ],
)
def test_malformed(raw):
    with pytest.raises(MalformedMessage):
        TwilioSerializer().parse(raw)


def test_unknown_event_names_itself():
    with pytest.raises(UnknownEvent) as err:
        parse({"event": "transcription"})
    assert err.value.event == "transcription"


def test_render_needs_start():
    with pytest.raises(NotStarted):
        TwilioSerializer().render_clear()


def test_render():
    ser = TwilioSerializer()
    ser.bind(parse(START))
    frame = bytes([0xFF]) * 160
    assert json.loads(ser.render_media(frame)) == {
        "event": "media",
        "streamSid": "MZ123",
        "media": {"payload": base64.b64encode(frame).decode()},
    }
    assert json.loads(ser.render_mark('a "quoted" name')) == {
        "event": "mark",
        "streamSid": "MZ123",
        "mark": {"name": 'a "quoted" name'},
    }
    assert json.loads(ser.render_clear()) == {"event": "clear", "streamSid": "MZ123"}


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_random_input_raises_only_telephony_errors(raw):
    try:
        TwilioSerializer().parse(raw)
    except TelephonyError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["connected", "start", "media", "dtmf", "mark", "stop", "other"]),
    st.dictionaries(
        st.sampled_from(["start", "media", "dtmf", "mark", "stop", "streamSid"]), json_values
    ),
)
def test_mutated_messages_raise_only_telephony_errors(event, fields):
    try:
        TwilioSerializer().parse(json.dumps({"event": event, **fields}))
    except TelephonyError:
        pass


def test_deeply_nested_json_is_malformed_not_a_crash():
    with pytest.raises(MalformedMessage):
        TwilioSerializer().parse("[" * 60000 + "]" * 60000)
