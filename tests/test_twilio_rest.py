"""Transfer through the Twilio REST API, against a fake Twilio on 127.0.0.1."""

import base64
import xml.etree.ElementTree as ET

import pytest
from aiohttp import web

from voicebot.telephony.serializer import Start
from voicebot_plugins.twilio.rest import TwilioRestClient, TwilioRestError
from voicebot_plugins.twilio.serializer import TwilioOptions, TwilioSerializer

SID, TOKEN = "AC0123", "secret-token"
START = Start(stream_id="MZ1", call_id="CA42", account_id=SID)


@pytest.fixture
async def fake_twilio():
    requests: list[dict] = []

    async def update_call(request: web.Request) -> web.Response:
        form = await request.post()
        requests.append(
            {
                "path": request.path,
                "auth": request.headers.get("Authorization"),
                "form": dict(form),
            }
        )
        if request.match_info["call"] == "CAgone.json":
            return web.json_response(
                {"code": 20404, "message": "The requested resource was not found", "status": 404},
                status=404,
            )
        return web.json_response({"sid": request.match_info["call"][:-5], "status": "in-progress"})

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{call}", update_call)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", requests
    await runner.cleanup()


async def test_transfer_posts_dial_twiml(fake_twilio):
    base_url, requests = fake_twilio
    client = TwilioRestClient(SID, TOKEN, base_url=base_url, caller_id="+15550000000")
    try:
        await client.transfer(START, "+15551234567")
    finally:
        await client.aclose()
    (req,) = requests
    assert req["path"] == f"/2010-04-01/Accounts/{SID}/Calls/CA42.json"
    assert req["auth"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    dial = ET.fromstring(req["form"]["Twiml"]).find("Dial")
    assert dial.text == "+15551234567"
    assert dial.get("callerId") == "+15550000000"


async def test_transfer_error_says_what_twilio_said(fake_twilio):
    base_url, _ = fake_twilio
    client = TwilioRestClient(SID, TOKEN, base_url=base_url)
    try:
        with pytest.raises(TwilioRestError, match="not found") as err:
            await client.transfer(Start("MZ1", "CAgone"), "+15551234567")
    finally:
        await client.aclose()
    assert err.value.status == 404
    assert err.value.code == 20404


async def test_bad_target_is_refused_before_any_request(fake_twilio):
    base_url, requests = fake_twilio
    client = TwilioRestClient(SID, TOKEN, base_url=base_url)
    with pytest.raises(TwilioRestError, match=r"E\.164"):
        await client.transfer(START, "<Hangup/>")
    assert requests == []
    await client.aclose()


async def test_unreachable_api_is_a_clear_error():
    client = TwilioRestClient(SID, TOKEN, base_url="http://127.0.0.1:9", timeout_s=2)
    try:
        with pytest.raises(TwilioRestError, match="unreachable"):
            await client.transfer(START, "+15551234567")
    finally:
        await client.aclose()


def test_call_control_needs_credentials():
    assert TwilioSerializer.call_control(TwilioOptions()) is None
    client = TwilioSerializer.call_control(TwilioOptions(account_sid=SID, auth_token=TOKEN))
    assert isinstance(client, TwilioRestClient)
