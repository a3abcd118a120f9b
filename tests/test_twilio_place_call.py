"""An outbound call through the Twilio REST API (`place_call`), against a fake Twilio on
127.0.0.1 that answers as the Calls resource does: the form Twilio documents (To, From, Url,
StatusCallback and one StatusCallbackEvent per event), and its errors as TwilioRestError."""

import base64

import pytest
from aiohttp import web

from voicebot_plugins.twilio.rest import TwilioRestClient, TwilioRestError

SID, TOKEN = "AC0123", "secret-token"
PUBLIC = "https://bot.example.com"


@pytest.fixture
async def fake_twilio():
    requests: list[dict] = []

    async def create_call(request: web.Request) -> web.Response:
        form = await request.post()
        requests.append(
            {
                "path": request.path,
                "auth": request.headers.get("Authorization"),
                "form": [(k, v) for k, v in form.items()],
            }
        )
        if form["To"] == "+15550000404":
            return web.json_response(
                {"code": 21211, "message": "The 'To' number is not a valid phone number."},
                status=400,
            )
        return web.json_response({"sid": "CA9001", "status": "queued"}, status=201)

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{account}/Calls.json", create_call)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", requests
    await runner.cleanup()


async def test_place_call_posts_the_documented_form(fake_twilio):
    base_url, requests = fake_twilio
    client = TwilioRestClient(SID, TOKEN, base_url=base_url)
    try:
        sid = await client.place_call("+15551234567", "+15557654321", PUBLIC + "/")
    finally:
        await client.aclose()
    assert sid == "CA9001"
    (req,) = requests
    assert req["path"] == f"/2010-04-01/Accounts/{SID}/Calls.json"
    assert req["auth"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert req["form"] == [
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


async def test_place_call_errors_say_why(fake_twilio):
    base_url, requests = fake_twilio
    client = TwilioRestClient(SID, TOKEN, base_url=base_url)
    try:
        with pytest.raises(TwilioRestError, match="not a valid phone number") as refused:
            await client.place_call("+15550000404", "+15557654321", PUBLIC)
        assert refused.value.code == 21211
        with pytest.raises(TwilioRestError, match=r"E\.164"):
            await client.place_call("555-1234", "+15557654321", PUBLIC)
        with pytest.raises(TwilioRestError, match="public_url"):
            await client.place_call("+15551234567", "+15557654321", "")
    finally:
        await client.aclose()
    assert len(requests) == 1  # the bad number and the missing URL never left the process
