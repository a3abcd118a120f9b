"""An outbound call through Twilio's REST API (`place_call`) with the official `twilio` SDK,
against a wire-compatible fake of Twilio's Calls resource on 127.0.0.1: the form Twilio documents
(To, From, Url, StatusCallback and one StatusCallbackEvent per event), and its errors as
TwilioRestError."""

import base64

import pytest

from voicebot_plugins.twilio.rest import TwilioControl, TwilioRestError

from .twilio_rest_fake import fake_twilio_rest

SID, TOKEN = "AC0123", "secret-token"
PUBLIC = "https://bot.example.com"


@pytest.fixture
async def fake():
    async with fake_twilio_rest(SID, TOKEN) as fake:
        yield fake


async def test_place_call_posts_the_documented_form(fake):
    client = TwilioControl(SID, TOKEN, base_url=fake.url)
    try:
        sid = await client.place_call("+15551234567", "+15557654321", PUBLIC + "/")
    finally:
        await client.aclose()
    assert sid == "CA9001"
    (req,) = fake.requests
    assert (req.method, req.path) == ("POST", f"/2010-04-01/Accounts/{SID}/Calls.json")
    assert req.content_type == "application/x-www-form-urlencoded"
    assert req.auth == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert sorted(req.form) == sorted(
        [
            ("To", "+15551234567"),
            ("From", "+15557654321"),
            ("Url", f"{PUBLIC}/twilio/voice"),
            ("Method", "POST"),
            ("StatusCallback", f"{PUBLIC}/twilio/status"),
            ("StatusCallbackMethod", "POST"),
            ("StatusCallbackEvent", "initiated"),
            ("StatusCallbackEvent", "ringing"),
            ("StatusCallbackEvent", "answered"),
            ("StatusCallbackEvent", "completed"),
        ]
    )
    assert req.getall("StatusCallbackEvent") == ["initiated", "ringing", "answered", "completed"]


async def test_machine_detection_is_asked_for_when_configured(fake):
    client = TwilioControl(SID, TOKEN, base_url=fake.url, machine_detection="DetectMessageEnd")
    try:
        await client.place_call("+15551234567", "+15557654321", PUBLIC)
    finally:
        await client.aclose()
    assert fake.requests[0].getall("MachineDetection") == ["DetectMessageEnd"]


async def test_place_call_errors_say_why(fake):
    fake.refuse["+15550000404"] = (400, 21211, "The 'To' number is not a valid phone number.")
    client = TwilioControl(SID, TOKEN, base_url=fake.url)
    try:
        with pytest.raises(TwilioRestError, match="not a valid phone number") as refused:
            await client.place_call("+15550000404", "+15557654321", PUBLIC)
        assert (refused.value.status, refused.value.code) == (400, 21211)
        with pytest.raises(TwilioRestError, match=r"E\.164"):
            await client.place_call("555-1234", "+15557654321", PUBLIC)
        with pytest.raises(TwilioRestError, match="public_url"):
            await client.place_call("+15551234567", "+15557654321", "")
    finally:
        await client.aclose()
    assert len(fake.requests) == 1  # the bad number and the missing URL never left the process


async def test_place_call_failures_of_the_api_are_clear(fake):
    fake.refuse["+15550000500"] = (500, 20500, "Internal Server Error")
    fake.hang.add("+15550000504")
    client = TwilioControl(SID, "wrong-token", base_url=fake.url, timeout_s=0.3)
    try:
        with pytest.raises(TwilioRestError, match="HTTP 401") as err:
            await client.place_call("+15551234567", "+15557654321", PUBLIC)
        assert err.value.code == 20003
    finally:
        await client.aclose()
    client = TwilioControl(SID, TOKEN, base_url=fake.url, timeout_s=0.3)
    try:
        with pytest.raises(TwilioRestError, match="HTTP 500") as err:
            await client.place_call("+15550000500", "+15557654321", PUBLIC)
        with pytest.raises(TwilioRestError, match="unreachable"):
            await client.place_call("+15550000504", "+15557654321", PUBLIC)
    finally:
        await client.aclose()
    assert fake.placed == 0
