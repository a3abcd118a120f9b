"""Telnyx end to end over real sockets: the TeXML voice webhook with a valid, a forged and a
stale Ed25519 signature; a media stream in Telnyx's shapes (connected, start, PCMU media, dtmf,
mark, clear, stop) carrying a whole conversation with a barge-in; and transfer and hang-up through
the official SDK against a loopback TeXML REST API."""

from __future__ import annotations

import base64
import json
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .carrier_e2e import converse
from .carrier_phone import CarrierPhone, Dialect, Out
from .support import base_config, serve
from .twilio_e2e_support import assert_nothing_left, record

KEY = Ed25519PrivateKey.generate()
PUBLIC_KEY = base64.b64encode(KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
CALL = "v3:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ"
ACCOUNT = "3e6f995f-85f7-4705-9741-53b116d28237"
FORM = {
    "CallSid": CALL,
    "AccountSid": ACCOUNT,
    "From": "+13122010094",
    "To": "+13122123456",
    "CallStatus": "ringing",
    "Direction": "inbound",
}
FLOW = "nodes:\n  hello:\n    say: Hi.\n    next: bye\n  bye:\n    hangup: done\n"


class Telnyx(Dialect):
    """Telnyx's media-streaming frames, as its AsyncAPI specification shows them."""

    def connected(self) -> dict:
        return {"event": "connected", "version": "1.0.0"}

    def start(self, phone: CarrierPhone) -> dict:
        return {
            "event": "start",
            "sequence_number": str(phone.next_seq()),
            "stream_id": phone.stream_id,
            "start": {
                "user_id": phone.account_id,
                "call_control_id": phone.call_id,
                "call_session_id": "ff55a038-6f5d-11ef-9692-02420aeffb1f",
                "from": FORM["From"],
                "to": FORM["To"],
                "tags": [],
                "custom_parameters": phone.parameters,
                "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
            },
        }

    def media(self, phone: CarrierPhone, payload: bytes) -> str:
        seq = phone.next_seq()
        return json.dumps(
            {
                "event": "media",
                "sequence_number": str(seq),
                "media": {
                    "track": "inbound",
                    "chunk": str(seq),
                    "timestamp": str(phone.sent_ms),
                    "payload": base64.b64encode(payload).decode(),
                },
                "stream_id": phone.stream_id,
            }
        )

    def dtmf(self, phone: CarrierPhone, digit: str) -> str:
        return json.dumps(
            {
                "event": "dtmf",
                "stream_id": phone.stream_id,
                "sequence_number": str(phone.next_seq()),
                "dtmf": {"digit": digit},
            }
        )

    def stop(self, phone: CarrierPhone) -> str:
        return json.dumps(
            {
                "event": "stop",
                "sequence_number": str(phone.next_seq()),
                "stop": {"user_id": phone.account_id, "call_control_id": phone.call_id},
                "stream_id": phone.stream_id,
            }
        )

    def outbound(self, phone: CarrierPhone, raw: str | bytes) -> Out:
        msg = json.loads(raw)
        if msg["event"] == "media":
            assert set(msg) == {"event", "media"} and set(msg["media"]) == {"payload"}, msg
            return Out("media", audio=base64.b64decode(msg["media"]["payload"]))
        if msg["event"] == "mark":
            return Out("mark", name=msg["mark"]["name"])
        if msg["event"] == "clear":
            assert msg == {"event": "clear"}
            return Out("clear")
        return Out("other", raw=msg)

    def echo(self, phone: CarrierPhone, name: str) -> str:
        return json.dumps(
            {
                "event": "mark",
                "sequence_number": str(phone.next_seq()),
                "stream_id": phone.stream_id,
                "mark": {"name": name},
            }
        )


def sign(body: bytes, timestamp: int | None = None, key=KEY) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(f"{ts}|".encode() + body)
    return {
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        "telnyx-timestamp": ts,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def telnyx_config(tmp_path=None, api: str = "", flow: bool = False, **telnyx) -> dict:
    cfg = base_config()
    if flow:
        (tmp_path / "flows").mkdir(exist_ok=True)
        (tmp_path / "flows" / "main.yaml").write_text(FLOW)
        cfg = base_config(dialogue={"mode": "flows"}, flows={"dir": "flows", "start": "main"})
    options = {"public_key": PUBLIC_KEY.decode(), "api_key": "KEYtest", "api_base_url": api}
    cfg["telephony"] = {"telnyx": {**options, **telnyx}}
    return cfg


async def post(server, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.http}/telnyx/voice", data=body, headers=headers) as r:
            return r.status, await r.text()


async def answered_call(server, call_id: str = CALL) -> CarrierPhone:
    """Telnyx's side: the signed voice webhook, then the stream its TeXML asked for."""
    body = urlencode({**FORM, "CallSid": call_id}).encode()
    status, doc = await post(server, body, sign(body))
    assert status == 200, doc
    stream = ET.fromstring(doc).find("./Connect/Stream")
    assert stream.get("bidirectionalMode") == "rtp" and stream.get("bidirectionalCodec") == "PCMU"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert stream.get("url") == f"{server.url}/telnyx/media"
    dialect = Telnyx()
    phone = await CarrierPhone.dial(
        stream.get("url"), dialect, call_id=call_id, account_id=ACCOUNT, parameters=params
    )
    await phone.send(dialect.connected())
    await phone.start()
    return phone


async def test_telnyx_webhook_signature_is_checked(tmp_path):
    async with serve(tmp_path, telnyx_config()) as server:
        body = urlencode(FORM).encode()
        headers = sign(body)
        forged = body.replace(b"%2B13122010094", b"%2B19990001111")
        assert (await post(server, forged, headers))[0] == 403
        stale = sign(body, int(time.time()) - 600)  # a replay, past the 5-minute tolerance
        assert (await post(server, body, stale))[0] == 403
        other = sign(body, key=Ed25519PrivateKey.generate())
        status, text = await post(server, body, other)
        assert status == 403 and json.loads(text)["code"] == "bad_signature"
        no_header = {"Content-Type": headers["Content-Type"]}
        assert (await post(server, body, no_header))[0] == 403
        status, doc = await post(server, body, headers)
        assert status == 200 and "<Connect><Stream" in doc
        async with aiohttp.ClientSession() as http:  # a GET's query would not be signed
            async with http.get(f"{server.http}/telnyx/voice", params=FORM) as r:
                assert r.status == 405


async def test_telnyx_call_end_to_end(tmp_path):
    async with serve(tmp_path, telnyx_config()) as server:
        rec = record(server)
        phone = await answered_call(server)
        await phone.wait(lambda: phone.media)
        (call,) = rec.calls
        assert call.transport == "telnyx"
        assert call.variables["From"] == FORM["From"] and call.variables["call_sid"] == CALL
        assert call.variables["account_sid"] == ACCOUNT
        await converse(server, phone, rec)
        await phone.stop()
        assert await phone.wait_closed() == 1000
        await rec.wait(lambda: rec.ended)
        assert rec.ended == ["remote"]
        await assert_nothing_left(server)


async def test_telnyx_stream_without_the_webhook_token_is_refused(tmp_path):
    async with serve(tmp_path, telnyx_config()) as server:
        phone = await CarrierPhone.dial(f"{server.url}/telephony/telnyx/media", Telnyx())
        await phone.start()
        assert await phone.wait_closed() == 1008
        await assert_nothing_left(server)


@pytest.fixture
async def fake_telnyx():
    """Telnyx's TeXML REST API on 127.0.0.1: records call updates."""
    updates: list[tuple[str, dict, str]] = []

    async def update(request: web.Request) -> web.Response:
        body = await request.json()
        updates.append((request.path, body, request.headers.get("Authorization", "")))
        if request.match_info["call"] == "v3:gone":
            return web.json_response({"errors": [{"code": "90018"}]}, status=422)
        return web.json_response({"call_sid": request.match_info["call"], "status": "completed"})

    app = web.Application()
    app.router.add_post("/texml/Accounts/{account}/Calls/{call}", update)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", updates
    await runner.cleanup()


async def test_telnyx_transfer_and_failure_through_the_sdk(tmp_path, fake_telnyx):
    api, updates = fake_telnyx
    cfg = telnyx_config(api=api, transfer_caller_id="+13120000000")
    async with serve(tmp_path, cfg) as server:
        rec = record(server)
        phone = await answered_call(server)
        await phone.wait(lambda: phone.media)
        assert await rec.calls[0].io.transfer("+15551234567") is True
        ((path, body, auth),) = updates
        assert path == f"/texml/Accounts/{ACCOUNT}/Calls/{CALL}" and auth == "Bearer KEYtest"
        dial = ET.fromstring(body["Texml"]).find("Dial")
        assert (dial.text, dial.get("callerId")) == ("+15551234567", "+13120000000")
        assert await rec.calls[0].io.transfer("not a number") is False  # refused before the API
        await phone.stop()
        await phone.wait_closed()
        phone = await answered_call(server, call_id="v3:gone")
        await phone.wait(lambda: phone.media)
        assert await rec.calls[1].io.transfer("+15551234567") is False  # HTTP 422: logged
        await phone.stop()
        await phone.wait_closed()
        await assert_nothing_left(server)


async def test_telnyx_bot_hang_up_goes_through_the_sdk(tmp_path, fake_telnyx):
    api, updates = fake_telnyx
    async with serve(tmp_path, telnyx_config(tmp_path, api=api, flow=True)) as server:
        rec = record(server)
        phone = await answered_call(server)
        await phone.wait(phone.idle)  # "Hi." heard; the flow hangs up
        assert await phone.wait_closed() == 1000
        ((path, body, _),) = updates
        assert path == f"/texml/Accounts/{ACCOUNT}/Calls/{CALL}"
        assert body == {"Status": "completed"}
        await rec.wait(lambda: rec.ended)
        await assert_nothing_left(server)
