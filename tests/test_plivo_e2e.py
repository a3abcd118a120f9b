"""Plivo end to end over real sockets: the answer URL with a valid and a forged
`X-Plivo-Signature-V3`; a media stream in Plivo's shapes (start with `extra_headers`, μ-law
media, dtmf, playAudio, checkpoint → playedStream, clearAudio → clearedAudio) carrying a whole
conversation with a barge-in; hang-up and transfer through the real `plivo` SDK against a
loopback Plivo Call API (`plivo_api_fake.py`), and the transfer URL Plivo then fetches."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import xml.etree.ElementTree as ET
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from .carrier_e2e import converse
from .carrier_phone import CarrierPhone, Dialect, Out
from .plivo_api_fake import plivo_api
from .support import base_config, serve
from .twilio_e2e_support import assert_nothing_left, record

AUTH_ID, TOKEN = "MAXXXXXXXXXXXXXXXXXX", "plivo-test-token"
CALL = "12345678-1234-1234-1234-123456789abc"
FORM = {
    "CallUUID": CALL,
    "From": "+14155550100",
    "To": "+14155550111",
    "Direction": "inbound",
    "CallStatus": "ringing",
}
FLOW = "nodes:\n  hello:\n    say: Hi.\n    next: bye\n  bye:\n    hangup: done\n"


def plivo_sign(url: str, params: dict[str, str], nonce: str = "12345678901234567890") -> dict:
    """Plivo's V3 signature as its docs describe it, written independently of the SDK: the URL
    without its query, then `?` and the sorted (decoded) query parameters, then (for a POST with
    a query) `.`, then the sorted POST parameters run together; then `.` and the nonce."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    query = "&".join(f"{k}={v}" for k, v in sorted(parse_qsl(parts.query)))
    if query or params:
        base += "?" + query
    if query and params:
        base += "."
    base += "".join(k + v for k, v in sorted(params.items()))
    digest = hmac.new(TOKEN.encode(), f"{base}.{nonce}".encode(), hashlib.sha256).digest()
    return {
        "X-Plivo-Signature-V3": base64.b64encode(digest).decode(),
        "X-Plivo-Signature-V3-Nonce": nonce,
    }


class Plivo(Dialect):
    """Plivo's audio-stream events, as its Stream Event Protocol documents them."""

    on_clear = "drop"  # a cleared checkpoint is never acknowledged

    def start(self, phone: CarrierPhone) -> dict:
        return {
            "event": "start",
            "sequenceNumber": phone.next_seq(),
            "start": {
                "callId": phone.call_id,
                "streamId": phone.stream_id,
                "accountId": phone.account_id,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
            },
            "extra_headers": phone.parameters["extra_headers"],
        }

    def media(self, phone: CarrierPhone, payload: bytes) -> str:
        seq = phone.next_seq()
        return json.dumps(
            {
                "event": "media",
                "sequenceNumber": seq,
                "streamId": phone.stream_id,
                "media": {
                    "track": "inbound",
                    "timestamp": str(1705312200000 + phone.sent_ms),
                    "chunk": seq,
                    "payload": base64.b64encode(payload).decode(),
                },
                "extra_headers": phone.parameters["extra_headers"],
            }
        )

    def dtmf(self, phone: CarrierPhone, digit: str) -> str:
        return json.dumps(
            {
                "event": "dtmf",
                "sequenceNumber": phone.next_seq(),
                "streamId": phone.stream_id,
                "dtmf": {"track": "inbound", "digit": digit, "timestamp": "1705312200000"},
                "extra_headers": phone.parameters["extra_headers"],
            }
        )

    def outbound(self, phone: CarrierPhone, raw: str | bytes) -> Out:
        msg = json.loads(raw)
        if msg["event"] == "playAudio":
            media = msg["media"]
            assert (media["contentType"], media["sampleRate"]) == ("audio/x-mulaw", 8000), msg
            return Out("media", audio=base64.b64decode(media["payload"]))
        if msg["event"] == "checkpoint":
            assert msg["streamId"] == phone.stream_id
            return Out("mark", name=msg["name"])
        if msg["event"] == "clearAudio":
            assert msg == {"event": "clearAudio", "streamId": phone.stream_id}
            return Out("clear")
        return Out("other", raw=msg)

    def echo(self, phone: CarrierPhone, name: str) -> str:
        return json.dumps(
            {
                "event": "playedStream",
                "sequenceNumber": phone.next_seq(),
                "streamId": phone.stream_id,
                "name": name,
            }
        )

    def cleared(self, phone: CarrierPhone) -> str:
        return json.dumps(
            {
                "event": "clearedAudio",
                "sequenceNumber": phone.next_seq(),
                "streamId": phone.stream_id,
            }
        )


def plivo_config(tmp_path=None, flow: bool = False, **plivo) -> dict:
    cfg = base_config()
    if flow:
        (tmp_path / "flows").mkdir(exist_ok=True)
        (tmp_path / "flows" / "main.yaml").write_text(FLOW)
        cfg = base_config(dialogue={"mode": "flows"}, flows={"dir": "flows", "start": "main"})
    options = {"auth_id": AUTH_ID, "auth_token": TOKEN}
    cfg["telephony"] = {"plivo": {**options, **plivo}}
    return cfg


async def post(server, path: str, form: dict[str, str], headers: dict) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.http}{path}", data=form, headers=headers) as r:
            return r.status, await r.text()


async def answered_call(server, call_id: str = CALL) -> CarrierPhone:
    form = {**FORM, "CallUUID": call_id}
    status, doc = await post(
        server, "/plivo/answer", form, plivo_sign(f"{server.http}/plivo/answer", form)
    )
    assert status == 200, doc
    stream = ET.fromstring(doc).find("Stream")
    assert stream.get("bidirectional") == "true" and stream.get("keepCallAlive") == "true"
    assert stream.get("contentType") == "audio/x-mulaw;rate=8000"
    extra = stream.get("extraHeaders")
    assert all(c.isalnum() for c in extra.replace("=", "")), extra  # Plivo's rule
    assert stream.text == f"{server.url}/plivo/media"
    phone = await CarrierPhone.dial(
        stream.text,
        Plivo(),
        call_id=call_id,
        account_id=AUTH_ID,
        parameters={"extra_headers": extra},
    )
    await phone.start()
    return phone


async def test_plivo_answer_signature_is_checked(tmp_path):
    async with serve(tmp_path, plivo_config()) as server:
        url = f"{server.http}/plivo/answer"
        headers = plivo_sign(url, FORM)
        forged = {**FORM, "From": "+19990001111"}
        status, text = await post(server, "/plivo/answer", forged, headers)
        assert status == 403 and json.loads(text)["code"] == "bad_signature"
        other_nonce = {**headers, "X-Plivo-Signature-V3-Nonce": "99999999999999999999"}
        assert (await post(server, "/plivo/answer", FORM, other_nonce))[0] == 403
        assert (await post(server, "/plivo/answer", FORM, {}))[0] == 403
        rotated = {**headers, "X-Plivo-Signature-V3": "bm90LWl0," + headers["X-Plivo-Signature-V3"]}
        assert (await post(server, "/plivo/answer", FORM, rotated))[0] == 200
        status, doc = await post(server, "/plivo/answer", FORM, headers)
        assert status == 200 and "<Stream " in doc


async def test_plivo_call_end_to_end(tmp_path):
    async with serve(tmp_path, plivo_config()) as server:
        rec = record(server)
        phone = await answered_call(server)
        await phone.wait(lambda: phone.media)
        (call,) = rec.calls
        assert call.transport == "plivo" and call.variables["call_sid"] == CALL
        assert call.variables["From"] == FORM["From"]  # minted by the signed answer
        await converse(server, phone, rec)
        await phone.stop()  # Plivo has no stop message: the socket closes
        await rec.wait(lambda: rec.ended)
        assert rec.ended == ["remote"]
        await assert_nothing_left(server)


async def test_plivo_mangled_or_missing_token_is_refused(tmp_path):
    async with serve(tmp_path, plivo_config()) as server:
        for extra in ("voicebotstreamtoken=zz", "userId=12345"):
            phone = await CarrierPhone.dial(
                f"{server.url}/plivo/media", Plivo(), parameters={"extra_headers": extra}
            )
            await phone.start()
            assert await phone.wait_closed() == 1008
        await assert_nothing_left(server)


@pytest.fixture
async def fake_plivo(tmp_path):
    """Plivo's Call API on 127.0.0.1 (HTTPS behind a CONNECT proxy), for the real SDK."""
    async with plivo_api(tmp_path, AUTH_ID, TOKEN) as api:
        api.live_calls.add(CALL)
        yield api


async def test_plivo_transfer_then_plivo_fetches_the_dial(tmp_path, fake_plivo):
    seen = fake_plivo.seen
    async with serve(tmp_path, plivo_config(**fake_plivo.options)) as server:
        transfer_url = f"{server.http}/plivo/transfer"
        server.runtime.config.telephony["plivo"].transfer_url = transfer_url
        server.runtime.config.telephony["plivo"].transfer_caller_id = "+14150000000"
        rec = record(server)
        phone = await answered_call(server)
        await phone.wait(lambda: phone.media)
        assert await rec.calls[0].io.transfer("+15551234567") is True
        ((method, path, body, auth),) = seen  # sent by the plivo SDK, through the proxy
        assert fake_plivo.tunnels == ["CONNECT api.plivo.com:443"]
        assert (method, path) == ("POST", f"/v1/Account/{AUTH_ID}/Call/{CALL}/")
        assert auth == "Basic " + base64.b64encode(f"{AUTH_ID}:{TOKEN}".encode()).decode()
        assert body["legs"] == "aleg" and body["aleg_method"] == "POST"
        # Plivo then POSTs the (signed) aleg_url and runs the <Dial> it answers
        url = body["aleg_url"]
        assert url.startswith(transfer_url + "?")
        form = {"CallUUID": CALL}
        path = urlsplit(url).path + "?" + urlsplit(url).query
        status, doc = await post(server, path, form, plivo_sign(url, form))
        assert status == 200, doc
        dial = ET.fromstring(doc).find("Dial")
        assert dial.get("callerId") == "+14150000000" and dial.find("Number").text == "+15551234567"
        assert dict(parse_qsl(urlsplit(url).query))["to"] == "+15551234567"
        await phone.stop()
        await phone.wait_closed()
        await assert_nothing_left(server)


async def test_plivo_transfer_url_is_behind_the_signature(tmp_path):
    async with serve(tmp_path, plivo_config()) as server:
        status, _ = await post(server, "/plivo/transfer?to=%2B15551234567", {}, {})
        assert status == 403
        url = f"{server.http}/plivo/transfer?to=%3Cx%3E"
        status, text = await post(server, "/plivo/transfer?to=%3Cx%3E", {}, plivo_sign(url, {}))
        assert status == 400 and json.loads(text)["code"] == "bad_target"


async def test_plivo_bot_hang_up_goes_through_the_call_api(tmp_path, fake_plivo):
    seen = fake_plivo.seen
    async with serve(tmp_path, plivo_config(tmp_path, flow=True, **fake_plivo.options)) as server:
        rec = record(server)
        phone = await answered_call(server)
        await phone.wait(phone.idle)  # "Hi." heard; the flow hangs up
        assert await phone.wait_closed() == 1000
        assert [(m, p) for m, p, _, _ in seen] == [
            ("DELETE", f"/v1/Account/{AUTH_ID}/Call/{CALL}/")
        ]
        await rec.wait(lambda: rec.ended)
        await assert_nothing_left(server)
