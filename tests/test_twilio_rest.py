"""Transfer through Twilio's REST API with the official `twilio` SDK, pointed at a wire-compatible
fake of Twilio on 127.0.0.1 by `api_base_url`; every way the API can fail is a TwilioRestError."""

import base64
import sys
import xml.etree.ElementTree as ET

import pytest

from voicebot.telephony.serializer import Start
from voicebot_plugins.twilio.rest import TwilioControl, TwilioRestError
from voicebot_plugins.twilio.serializer import TwilioOptions, TwilioSerializer

from .twilio_rest_fake import fake_twilio_rest

SID, TOKEN = "AC0123", "secret-token"
START = Start(stream_id="MZ1", call_id="CA42", account_id=SID)


@pytest.fixture
async def fake():
    async with fake_twilio_rest(SID, TOKEN) as fake:
        yield fake


async def test_transfer_posts_dial_twiml(fake):
    client = TwilioControl(SID, TOKEN, base_url=fake.url, caller_id="+15550000000")
    try:
        await client.transfer(START, "+15551234567")
    finally:
        await client.aclose()
    (req,) = fake.requests
    assert (req.method, req.path) == ("POST", f"/2010-04-01/Accounts/{SID}/Calls/CA42.json")
    assert req.content_type == "application/x-www-form-urlencoded"
    assert req.auth == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    dial = ET.fromstring(req.get("Twiml")).find("Dial")
    assert dial.text == "+15551234567"
    assert dial.get("callerId") == "+15550000000"


async def test_transfer_error_says_what_twilio_said(fake):
    fake.refuse["CAgone"] = (404, 20404, "The requested resource was not found")
    client = TwilioControl(SID, TOKEN, base_url=fake.url)
    try:
        with pytest.raises(TwilioRestError, match="not found") as err:
            await client.transfer(Start("MZ1", "CAgone"), "+15551234567")
    finally:
        await client.aclose()
    assert err.value.status == 404
    assert err.value.code == 20404
    assert "Twilio refused to update call CAgone: HTTP 404" in str(err.value)


async def test_wrong_credentials_are_a_clear_401(fake):
    client = TwilioControl(SID, "not-the-token", base_url=fake.url)
    try:
        with pytest.raises(TwilioRestError, match=r"HTTP 401.*Authenticate") as err:
            await client.transfer(START, "+15551234567")
    finally:
        await client.aclose()
    assert (err.value.status, err.value.code) == (401, 20003)


async def test_server_errors_and_non_json_answers_are_clear(fake):
    fake.refuse["CA500"] = (500, 20500, "Internal Server Error")
    fake.not_json.add("CAproxy")
    client = TwilioControl(SID, TOKEN, base_url=fake.url)
    try:
        with pytest.raises(TwilioRestError, match=r"HTTP 500 .*Internal Server Error") as err:
            await client.transfer(Start("MZ1", "CA500"), "+15551234567")
        assert err.value.status == 500
        with pytest.raises(TwilioRestError, match="HTTP 502") as err:
            await client.transfer(Start("MZ1", "CAproxy"), "+15551234567")
        assert err.value.status == 502
        await client.transfer(START, "+15551234567")  # the client is still usable
    finally:
        await client.aclose()
    assert len(fake.requests) == 3


async def test_an_api_that_never_answers_times_out(fake):
    fake.hang.add("CAslow")
    client = TwilioControl(SID, TOKEN, base_url=fake.url, timeout_s=0.3)
    try:
        with pytest.raises(TwilioRestError, match="unreachable"):
            await client.transfer(Start("MZ1", "CAslow"), "+15551234567")
    finally:
        await client.aclose()
    assert fake.received.is_set()  # it was the answer that never came, not the connection


async def test_bad_target_is_refused_before_any_request(fake):
    client = TwilioControl(SID, TOKEN, base_url=fake.url)
    with pytest.raises(TwilioRestError, match=r"E\.164"):
        await client.transfer(START, "<Hangup/>")
    with pytest.raises(TwilioRestError, match="which call"):
        await client.transfer(Start("MZ1", ""), "+15551234567")
    assert fake.requests == []
    await client.aclose()


async def test_unreachable_api_is_a_clear_error():
    client = TwilioControl(SID, TOKEN, base_url="http://127.0.0.1:9", timeout_s=2)
    try:
        with pytest.raises(TwilioRestError, match=r"unreachable at http://127\.0\.0\.1:9"):
            await client.transfer(START, "+15551234567")
    finally:
        await client.aclose()


def test_call_control_needs_credentials():
    assert TwilioSerializer.call_control(TwilioOptions()) is None
    client = TwilioSerializer.call_control(TwilioOptions(account_sid=SID, auth_token=TOKEN))
    assert isinstance(client, TwilioControl)
    assert client.base_url == "https://api.twilio.com"  # Twilio's own API unless configured


def test_without_the_sdk_the_problem_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "twilio", None)  # as if `twilio` were not installed
    options = TwilioOptions(account_sid=SID, auth_token=TOKEN)
    assert "pip install 'voicebot-runtime[twilio]'" in TwilioSerializer.transfer_problem(options)
    assert TwilioSerializer.call_control(options) is None
