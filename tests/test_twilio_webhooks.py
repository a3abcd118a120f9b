"""Twilio's HTTP webhooks and the media-stream upgrade, against a real server on loopback."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import aiohttp
import pytest
import websockets
from yarl import URL

from voicebot.telephony.carrier import TOKEN_PARAMETER

from .support import base_config, serve
from .twilio_phone import Phone, phone_config, stream_of, twilio_sign

TOKEN = "test-auth-token"
FORM = {
    "CallSid": "CA1234",
    "AccountSid": "AC0001",
    "From": "+15550001111",
    "To": "+15550002222",
    "CallStatus": "ringing",
    "Direction": "inbound",
}


def config(token: str = TOKEN, **server):
    cfg = base_config()
    cfg["telephony"] = {"twilio": {"auth_token": token}}
    if server:
        cfg["server"] = server
    return cfg


async def post(url: str, form: dict, headers: dict | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.post(url, data=form, headers=headers) as r:
        return r.status, await r.text()


async def test_signed_voice_webhook_answers_connect_stream(tmp_path):
    async with serve(tmp_path, config()) as server:
        url = f"{server.http}/twilio/voice"
        status, doc = await post(url, FORM, {"X-Twilio-Signature": twilio_sign(TOKEN, url, FORM)})
        assert status == 200, doc
        stream_url, params = stream_of(doc)
        assert stream_url == f"ws://127.0.0.1:{server.port}/twilio/media"
        token = params.pop(TOKEN_PARAMETER)
        assert len(token) > 32  # the one-time stream token (tests/test_phone_door.py)
        assert params == {"From": "+15550001111", "To": "+15550002222", "CallSid": "CA1234"}


async def test_voice_webhook_configured_as_get(tmp_path):
    async with serve(tmp_path, config()) as server:
        # the query string is checked exactly as sent, escapes included
        url = f"{server.http}/twilio/voice?" + urlencode(FORM) + "&Note=a%2Fb"
        headers = {"X-Twilio-Signature": twilio_sign(TOKEN, url)}
        async with (
            aiohttp.ClientSession() as http,
            http.get(URL(url, encoded=True), headers=headers) as r,
        ):
            assert r.status == 200
            assert stream_of(await r.text())[1]["From"] == "+15550001111"
        tampered = url.replace("%2B15550001111", "%2B19990001111")
        async with aiohttp.ClientSession() as http, http.get(tampered, headers=headers) as r:
            assert r.status == 403


async def test_public_url_is_used_for_signature_and_stream(tmp_path):
    async with serve(tmp_path, config(public_url="https://bot.example.com")) as server:
        signed = "https://bot.example.com/twilio/voice"
        status, doc = await post(
            f"{server.http}/twilio/voice",
            FORM,
            {"X-Twilio-Signature": twilio_sign(TOKEN, signed, FORM)},
        )
        assert status == 200, doc
        assert stream_of(doc)[0] == "wss://bot.example.com/twilio/media"


async def test_forwarded_headers_behind_a_proxy(tmp_path):
    async with serve(tmp_path, config()) as server:
        signed = "https://proxy.example.com:443/twilio/voice?tenant=a"
        headers = {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "proxy.example.com",
            "X-Twilio-Signature": twilio_sign(TOKEN, signed, FORM),
        }
        status, doc = await post(f"{server.http}/twilio/voice?tenant=a", FORM, headers)
        assert status == 200, doc
        assert stream_of(doc)[0] == "wss://proxy.example.com/twilio/media"


@pytest.mark.parametrize("signature", ["bad", "tampered", None])
async def test_bad_or_missing_signature_is_403_and_never_a_call(tmp_path, caplog, signature):
    async with serve(tmp_path, config()) as server:
        url = f"{server.http}/twilio/voice"
        headers = {}
        if signature == "bad":
            headers["X-Twilio-Signature"] = twilio_sign("wrong-token", url, FORM)
        elif signature == "tampered":
            headers["X-Twilio-Signature"] = twilio_sign(TOKEN, url, {**FORM, "From": "+1999"})
        with caplog.at_level(logging.INFO):
            status, body = await post(url, FORM, headers)
        assert status == 403
        assert "<Response>" not in body
        assert any("X-Twilio-Signature" in r.getMessage() for r in caplog.records)
        assert any(
            r.name == "voicebot.audit" and '"auth_failed"' in r.getMessage() for r in caplog.records
        )
        assert server.runtime.calls_total == 0


async def test_without_auth_token_no_signature_is_needed_once_explicitly_allowed(tmp_path):
    async with serve(tmp_path, phone_config()) as server:
        status, doc = await post(f"{server.http}/twilio/voice", FORM)
        assert status == 200
        assert stream_of(doc)[1]["CallSid"] == "CA1234"


async def test_at_capacity_the_call_is_rejected_busy(tmp_path):
    cfg = phone_config(security={"limits": {"max_calls": 1}})
    async with serve(tmp_path, cfg) as server:
        phone = await Phone.call(server)
        await phone.connected()
        await phone.start()
        await phone.wait(lambda: phone.media)  # the greeting: the call is up
        status, doc = await post(f"{server.http}/twilio/voice", FORM)
        assert status == 200
        assert ET.fromstring(doc).find("Reject").get("reason") == "busy"
        await phone.stop()
        await phone.wait_closed()


async def test_status_callback_is_recorded(tmp_path, caplog):
    from voicebot.server.telephony import TELEPHONY

    async with serve(tmp_path, config()) as server:
        url = f"{server.http}/twilio/status"
        form = {**FORM, "CallStatus": "completed", "CallDuration": "42"}
        with caplog.at_level(logging.INFO):
            status, _ = await post(url, form, {"X-Twilio-Signature": twilio_sign(TOKEN, url, form)})
            assert status == 204
            status, _ = await post(url, form, {"X-Twilio-Signature": "forged"})
            assert status == 403
        assert server.runner.app[TELEPHONY].status_counts == {"completed": 1}
        assert any("'completed'" in r.getMessage() for r in caplog.records)


async def test_media_stream_upgrade_signature(tmp_path):
    async with serve(tmp_path, config()) as server:
        url = f"{server.url}/twilio/media"
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url)
        assert refused.value.response.status_code == 403
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(
                url, additional_headers={"X-Twilio-Signature": twilio_sign("nope", url)}
            )
        phone = await Phone.call(server, auth_token=TOKEN)  # signed webhook, then signed upgrade
        await phone.connected()
        await phone.start()
        await phone.wait(lambda: phone.media)
        await phone.stop()
        assert await phone.wait_closed() == 1000
        assert server.runtime.calls_total == 1


async def test_unknown_provider_route_is_404(tmp_path):
    async with serve(tmp_path, config()) as server:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"{server.url}/telephony/nosuch/media")
        assert refused.value.response.status_code == 404
