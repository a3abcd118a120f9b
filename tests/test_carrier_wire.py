"""What a caller (or anyone who found the URL) sends is never trusted: every carrier's parser
turns any message, however malformed, into an event or a `TelephonyError` (logged and ignored,
or a close code), never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicebot.plugins import make_plugin_manager
from voicebot.telephony.serializer import MalformedStart, TelephonyError, UnsupportedFormat

CARRIERS = ("telnyx", "plivo", "vonage", "exotel")
REGISTRY = make_plugin_manager().registry

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
EVENTS = (
    "start",
    "media",
    "dtmf",
    "mark",
    "stop",
    "connected",
    "clear",
    "playedStream",
    "clearedAudio",
    "websocket:connected",
    "websocket:dtmf",
    "websocket:notify",
    "error",
)


def parse(carrier: str, message: str | bytes):
    try:
        return REGISTRY.transports[carrier]().parse(message)
    except TelephonyError as exc:
        return exc


@pytest.mark.parametrize("carrier", CARRIERS)
@settings(max_examples=50, deadline=None)
@given(event=st.sampled_from(EVENTS), body=st.dictionaries(st.text(max_size=12), json_values))
def test_any_shaped_message_is_an_event_or_a_telephony_error(carrier, event, body):
    parse(carrier, json.dumps({**body, "event": event}))
    for key in ("start", "media", "dtmf", "mark", "stop", "payload"):
        parse(carrier, json.dumps({"event": event, key: body}))


@pytest.mark.parametrize("carrier", CARRIERS)
@pytest.mark.parametrize(
    "raw",
    [
        "",
        "{",
        "[]",
        "null",
        '"x"',
        '{"event": 5}',
        b"\xff\xfe",
        '{"event":"media","media":{"payload":"@@@"}}',
        '{"event":"media","media":{"payload":"AAA=","timestamp":1e999}}',
    ],
)
def test_garbage_is_a_telephony_error(carrier, raw):
    result = parse(carrier, raw)
    if carrier != "vonage" or isinstance(raw, str):  # to Vonage, bytes are an audio frame
        assert isinstance(result, TelephonyError), result


@pytest.mark.parametrize(
    ("carrier", "start", "error"),
    [
        (
            "telnyx",
            {"event": "start", "stream_id": "s", "start": {"media_format": {"encoding": "OPUS"}}},
            UnsupportedFormat,
        ),
        ("telnyx", {"event": "start", "start": {}}, MalformedStart),
        (
            "telnyx",
            {
                "event": "start",
                "stream_id": "s",
                "start": {"media_format": {"encoding": "PCMU", "sample_rate": "Infinity"}},
            },
            MalformedStart,
        ),
        (
            "plivo",
            {
                "event": "start",
                "start": {
                    "streamId": "s",
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 16000},
                },
            },
            UnsupportedFormat,
        ),
        ("plivo", {"event": "start", "start": []}, MalformedStart),
        (
            "vonage",
            {"event": "websocket:connected", "content-type": "audio/l16;rate=44100"},
            UnsupportedFormat,
        ),
        (
            "vonage",
            {"event": "websocket:connected", "content-type": "audio/l16;rate=16000"},
            MalformedStart,
        ),
        (
            "exotel",
            {"event": "start", "stream_sid": "s", "start": {"media_format": {"encoding": "opus"}}},
            UnsupportedFormat,
        ),
        ("exotel", {"event": "start", "start": {"media_format": {}}}, MalformedStart),
    ],
)
def test_a_start_that_cannot_start_a_call(carrier, start, error):
    assert type(parse(carrier, json.dumps(start))) is error


def test_vonage_odd_length_frame_is_malformed():
    assert isinstance(parse("vonage", b"\x00\x01\x02"), TelephonyError)
