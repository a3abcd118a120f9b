"""Exotel end to end over real sockets: the Voicebot applet's dynamic URL with valid, wrong and
missing basic auth; a media stream in Exotel's shapes (connected, start with the URL's custom
parameters, base64 slin media, dtmf, mark, clear, stop) carrying a whole conversation with a
barge-in; a static wss:// applet URL admitted by basic auth alone; the bot's hang-up closing the
stream (Exotel's flow goes on to its next applet) and a SIP transfer refused with a reason
(transfers themselves: test_exotel_transfer.py)."""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import parse_qsl, urlsplit

import aiohttp

from .carrier_e2e import converse
from .carrier_phone import CarrierPhone, Dialect, Out
from .support import base_config, serve
from .twilio_e2e_support import assert_nothing_left, record

USER, PASSWORD = "exotel-key", "exotel-token-0123"
CALL = "b6cf1a4b3d2e8f90a1c2d3e4f5a6b7c8"
QUERY = {
    "CallSid": CALL,
    "CallFrom": "09876543210",
    "CallTo": "08047491899",
    "Direction": "incoming",
}
FLOW = "nodes:\n  hello:\n    say: Hi.\n    next: bye\n  bye:\n    hangup: done\n"


def basic(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class Exotel(Dialect):
    """Exotel's Voicebot applet messages, as its stream and voicebot applet guide shows them."""

    encoding, rate = "pcm_s16le", 8000

    def start(self, phone: CarrierPhone) -> dict:
        return {
            "event": "start",
            "sequence_number": phone.next_seq(),
            "stream_sid": phone.stream_id,
            "start": {
                "stream_sid": phone.stream_id,
                "call_sid": phone.call_id,
                "account_sid": phone.account_id,
                "from": QUERY["CallFrom"],
                "to": QUERY["CallTo"],
                "custom_parameters": phone.parameters,
                "media_format": {
                    "encoding": "base64",
                    "sample_rate": "8000",
                    "bit_rate": "128kbps",
                },
            },
        }

    def media(self, phone: CarrierPhone, payload: bytes) -> str:
        seq = phone.next_seq()
        return json.dumps(
            {
                "event": "media",
                "sequence_number": seq,
                "stream_sid": phone.stream_id,
                "media": {
                    "chunk": seq,
                    "timestamp": str(phone.sent_ms),
                    "payload": base64.b64encode(payload).decode(),
                },
            }
        )

    def dtmf(self, phone: CarrierPhone, digit: str) -> str:
        return json.dumps(
            {
                "event": "dtmf",
                "sequence_number": phone.next_seq(),
                "stream_sid": phone.stream_id,
                "dtmf": {"duration": "260", "digit": digit},
            }
        )

    def stop(self, phone: CarrierPhone) -> str:
        return json.dumps(
            {
                "event": "stop",
                "sequence_number": phone.next_seq(),
                "stream_sid": phone.stream_id,
                "stop": {
                    "call_sid": phone.call_id,
                    "account_sid": phone.account_id,
                    "reason": "callended",
                },
            }
        )

    def outbound(self, phone: CarrierPhone, raw: str | bytes) -> Out:
        msg = json.loads(raw)
        assert msg["stream_sid"] == phone.stream_id, msg
        if msg["event"] == "media":
            return Out("media", audio=base64.b64decode(msg["media"]["payload"]))
        if msg["event"] == "mark":
            return Out("mark", name=msg["mark"]["name"])
        if msg["event"] == "clear":
            return Out("clear")
        return Out("other", raw=msg)

    def echo(self, phone: CarrierPhone, name: str) -> str:
        return json.dumps(
            {
                "event": "mark",
                "sequence_number": phone.next_seq(),
                "stream_sid": phone.stream_id,
                "mark": {"name": name},
            }
        )


def exotel_config(tmp_path=None, flow: bool = False, **exotel) -> dict:
    cfg = base_config()
    if flow:
        (tmp_path / "flows").mkdir(exist_ok=True)
        (tmp_path / "flows" / "main.yaml").write_text(FLOW)
        cfg = base_config(dialogue={"mode": "flows"}, flows={"dir": "flows", "start": "main"})
    cfg["telephony"] = {"exotel": {"username": USER, "password": PASSWORD, **exotel}}
    return cfg


async def voicebot_url(server, headers: dict[str, str]) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.http}/exotel/voicebot", params=QUERY, headers=headers) as r:
            return r.status, await r.json()


async def answered_call(server) -> CarrierPhone:
    """Exotel's side: the applet's https URL first, then the wss URL it answered."""
    status, body = await voicebot_url(server, basic())
    assert status == 200, body
    url = body["url"]
    assert url.startswith(f"{server.url}/exotel/media?")
    params = dict(parse_qsl(urlsplit(url).query))  # Exotel's custom parameters
    phone = await CarrierPhone.dial(url, Exotel(), basic(), call_id=CALL, parameters=params)
    await phone.send({"event": "connected"})
    await phone.start()
    return phone


async def test_exotel_basic_auth_is_checked(tmp_path):
    async with serve(tmp_path, exotel_config()) as server:
        assert (await voicebot_url(server, {}))[0] == 403
        status, body = await voicebot_url(server, basic(password="wrong-token-0123"))
        assert status == 403 and body["code"] == "bad_signature"
        status, body = await voicebot_url(server, basic())
        assert status == 200 and body["url"].startswith("ws://")
        media = f"{server.url}/exotel/media"
        async with aiohttp.ClientSession() as http:  # the WebSocket upgrade needs it too
            async with http.get(media, headers={"Upgrade": "websocket"}) as r:
                assert r.status == 403


async def test_exotel_call_end_to_end(tmp_path):
    async with serve(tmp_path, exotel_config()) as server:
        rec = record(server)
        phone = await answered_call(server)
        await phone.wait(lambda: phone.media)
        (call,) = rec.calls
        assert call.transport == "exotel" and call.variables["call_sid"] == CALL
        assert call.variables["From"] == QUERY["CallFrom"]  # from the token, not the wire
        await converse(server, phone, rec)
        await phone.stop()
        assert await phone.wait_closed() == 1000
        await rec.wait(lambda: rec.ended)
        assert rec.ended == ["remote"]
        await assert_nothing_left(server)


async def test_exotel_static_applet_url_and_the_bot_hanging_up(tmp_path, caplog):
    async with serve(tmp_path, exotel_config(tmp_path, flow=True)) as server:
        rec = record(server)
        phone = await CarrierPhone.dial(
            f"{server.url}/exotel/media", Exotel(), basic(), call_id=CALL
        )
        await phone.start()  # no token: a static wss:// URL, admitted by its basic auth
        await phone.wait(phone.idle)  # "Hi." heard; the flow hangs up: the stream closes
        assert await phone.wait_closed() == 1000
        await rec.wait(lambda: rec.ended)
        assert rec.calls[0].variables["From"] == QUERY["CallFrom"]  # from Exotel's start
        await assert_nothing_left(server)
        phone = await answered_call(server)
        await phone.wait(lambda: phone.media)
        with caplog.at_level(logging.ERROR):  # the Connect applet dials phone numbers only
            assert await rec.calls[1].io.transfer("sip:agent@pbx.example.com") is False
        assert "its Connect applet dials phone numbers" in caplog.text
        await phone.stop()
        await phone.wait_closed()
        await assert_nothing_left(server)
