"""Hostile fields on the Twilio door: impossible numbers, multipart webhooks, and newlines that
would forge log lines. Each is a clean refusal (a close code or a 4xx with a reason), never a
traceback, and every log record stays one line."""

from __future__ import annotations

import io
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicebot.logsafe import escape
from voicebot.telephony.serializer import (
    Connected,
    Dtmf,
    MalformedMessage,
    MalformedStart,
    Mark,
    Media,
    Start,
    Stop,
    TelephonyError,
)
from voicebot_plugins.twilio.serializer import TwilioSerializer

from .support import serve
from .twilio_e2e_support import assert_nothing_left, record
from .twilio_phone import Phone, mulaw_silence, phone_config

INF, NAN = float("inf"), float("nan")
START = {
    "event": "start",
    "start": {
        "streamSid": "MZ1",
        "callSid": "CA1",
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    },
}


def start_with(**fmt) -> str:
    msg = json.loads(json.dumps(START))
    msg["start"]["mediaFormat"].update(fmt)
    return json.dumps(msg)  # Python's json writes inf and nan as Infinity and NaN, as an attacker


@pytest.mark.parametrize("field", ["sampleRate", "channels"])
@pytest.mark.parametrize("value", [INF, -INF, NAN, 10**400, 8000.5, True, "8k", [8000], None])
def test_impossible_format_numbers_are_a_malformed_start(field, value):
    with pytest.raises(MalformedStart, match=rf"mediaFormat\.{field} must be an integer"):
        TwilioSerializer().parse(start_with(**{field: value}))


@pytest.mark.parametrize("value", [INF, -INF, NAN, 10**400, "1e3", "", "9" * 40, {}, False])
def test_impossible_timestamps_are_malformed(value):
    media = {"event": "media", "media": {"payload": "AAAA", "timestamp": value}}
    with pytest.raises(MalformedMessage, match=r"media\.timestamp must be an integer"):
        TwilioSerializer().parse(json.dumps(media))


def test_twilio_spellings_of_numbers_still_parse():
    assert TwilioSerializer().parse(start_with(sampleRate="16000", channels=1)).media_format
    media = {"event": "media", "media": {"payload": "AAAA", "timestamp": "120"}}
    assert TwilioSerializer().parse(json.dumps(media)).timestamp == 120


@pytest.mark.parametrize("value", [INF, -INF, NAN])
async def test_infinite_sample_rate_closes_1007_without_a_traceback(tmp_path, caplog, value):
    caplog.set_level(logging.INFO)
    async with serve(tmp_path, phone_config()) as server:
        phone = await Phone.call(server)
        await phone.connected()
        await phone.start(fmt={"encoding": "audio/x-mulaw", "sampleRate": value, "channels": 1})
        assert await phone.wait_closed() == 1007
        assert "mediaFormat.sampleRate must be an integer" in phone.ws.close_reason
        assert server.runtime.calls_total == 0
        await assert_nothing_left(server)
    assert [r for r in caplog.records if r.exc_info] == []


async def test_infinite_timestamps_are_ignored_and_the_call_goes_on(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with serve(tmp_path, phone_config()) as server:
        rec = record(server)
        phone = await Phone.call(server)
        await phone.connected()
        await phone.start()
        await phone.wait(phone.idle)
        frame = json.loads(phone.media_message(mulaw_silence(20)))
        for value in (INF, -INF, NAN):
            frame["media"]["timestamp"] = value
            await phone.send(json.dumps(frame))
        await phone.dtmf("1")  # still served: the dtmf is a turn
        await rec.wait(lambda: rec.calls[0].turns_count == 1 or rec.spoken[1:])
        await phone.stop()
        assert await phone.wait_closed() == 1000
        await assert_nothing_left(server)
    assert [r for r in caplog.records if r.exc_info] == []
    assert any("media.timestamp must be an integer" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------ webhooks


async def test_multipart_and_bad_charsets_on_the_voice_webhook_are_4xx(tmp_path, caplog):
    import aiohttp

    caplog.set_level(logging.INFO)
    async with serve(tmp_path, phone_config()) as server:
        url = f"{server.http}/twilio/voice"
        form = aiohttp.FormData()
        form.add_field("From", "+1555")
        form.add_field("file", b"\x00" * 100, filename="x.bin")
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=form) as r:
                assert r.status == 415
                assert (await r.json())["code"] == "unsupported_media_type"
            garbage = b"--b\r\nContent-Disposition: form-data\r\n\r\n"
            headers = {"Content-Type": "multipart/form-data; boundary=b"}
            async with http.post(url, data=garbage, headers=headers) as r:
                assert r.status == 415
            bogus = {"Content-Type": "application/x-www-form-urlencoded; charset=bogus-8"}
            async with http.post(url, data=b"From=%2B1555", headers=bogus) as r:
                assert r.status == 400
                assert (await r.json())["code"] == "bad_form"
            async with http.post(url, data={"CallSid": "CA1"}) as r:
                assert r.status == 200  # and the door still works
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []


# ---------------------------------------------------------------------------- log injection

FORGED_LINE = 'voicebot.audit: {"event": "call_started", "subject": "mallory"}'


async def test_wire_fields_cannot_forge_a_log_line(tmp_path):
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        async with serve(tmp_path, phone_config()) as server:
            rec = record(server)
            evil = "\n" + FORGED_LINE
            phone = await Phone.call(server, stream_sid="MZ" + evil)
            await phone.connected()
            await phone.send({"event": "x" + evil})  # an unknown event is logged by name
            await phone.send({"event": "dtmf", "dtmf": {"digit": "1\r" + evil}})
            await phone.start({"subject": "s" + evil})
            await phone.wait(phone.idle)
            await phone.send({"event": "start", "start": {"streamSid": "MZ2" + evil}})
            await phone.stop()
            await phone.wait_closed()
            await rec.wait(lambda: rec.ended)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    lines = out.getvalue().splitlines()
    assert any("\\n" + FORGED_LINE in line for line in lines)  # it was logged, escaped
    assert not any(line.startswith(FORGED_LINE) for line in lines), out.getvalue()


def test_every_voicebot_logger_escapes_its_fields(caplog):
    caplog.set_level(logging.INFO)
    for name in ("voicebot.transports.browser", "voicebot.audit", "voicebot_plugins.x"):
        logging.getLogger(name).info("peer said %s / %r / %d", "a\nb", "c\u2028d", 7)
        logging.getLogger(name).info(f"f-string {'e' + chr(10) + 'f'}")
    assert [r.getMessage() for r in caplog.records] == [
        "peer said a\\nb / 'c\\u2028d' / 7",
        "f-string e\\nf",
    ] * 3
    assert escape("plain text, unchanged") == "plain text, unchanged"
    assert escape("\x1b[31m\u202e\x00\t") == "\\x1b[31m\\u202e\\x00\\t"


# ------------------------------------------------------------------------- property-based

specials = st.sampled_from([INF, -INF, INF, -INF, NAN, 10**400, -(10**20), -1, True, ""])
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
values = (
    specials
    | scalars
    | st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=8,
    )
)
SHAPES = {
    "start": {
        "streamSid": "MZ",
        "callSid": "CA",
        "accountSid": "AC",
        "tracks": ["inbound"],
        "customParameters": {"From": "+1"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    },
    "media": {"track": "inbound", "timestamp": "20", "payload": "AAAA"},
    "dtmf": {"digit": "1"},
    "mark": {"name": "m"},
    "stop": {"callSid": "CA"},
    "connected": {},
}
NUMERIC = {"sampleRate", "channels", "timestamp"}  # where Infinity and NaN used to crash
TYPED = (Connected, Start, Media, Dtmf, Mark, Stop)


def _paths(node: dict, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a nested message, objects included."""
    found = []
    for key, value in node.items():
        found.append((*prefix, key))
        if isinstance(value, dict):
            found += _paths(value, (*prefix, key))
    return found


@st.composite
def events(draw, event: str):
    """A real event with one to three of its fields, at any depth, replaced by anything or
    removed; and now and then a new field."""
    msg = json.loads(json.dumps({"event": event, event: SHAPES.get(event, {})}))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(msg) or [("event",)]
        numeric = [p for p in paths if p[-1] in NUMERIC]
        path = draw(st.sampled_from(numeric if numeric and draw(st.booleans()) else paths))
        node = msg
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        key = path[-1] if draw(st.integers(0, 5)) else draw(st.text(max_size=6))
        if draw(st.integers(0, 4)):
            node[key] = draw(values)
        else:
            node.pop(key, None)
    return json.dumps(msg)


@pytest.mark.parametrize("event", [*SHAPES, "other"])
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_parser_returns_a_typed_event_or_its_own_error(event, data):
    raw = data.draw(events(event))
    try:
        parsed = TwilioSerializer().parse(raw)
    except TelephonyError:
        return
    assert isinstance(parsed, TYPED)
    if isinstance(parsed, Start):
        assert isinstance(parsed.media_format.sample_rate, int)
        assert isinstance(parsed.media_format.channels, int)
    if isinstance(parsed, Media):
        assert parsed.timestamp is None or isinstance(parsed.timestamp, int)
