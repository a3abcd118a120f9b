"""The phone door (docs/telephony.md): unsigned phone routes stay shut unless explicitly opened,
`security.auth` guards them when there is no signature secret, a media stream needs the voice
webhook's one-time token, and the wire never sets a reserved call variable."""

from __future__ import annotations

import base64
import json
import logging

import aiohttp
import pytest
import websockets

from voicebot.server.stream_tokens import StreamTokens
from voicebot.telephony.carrier import TOKEN_PARAMETER

from .support import Client, base_config, serve
from .test_auth import auth_config, make_token
from .twilio_e2e_support import assert_nothing_left, record
from .twilio_phone import CALLER, Phone, answer, phone_config, stream_of, twilio_sign

DEFAULT_TWILIO = {"auth_token": "${TWILIO_AUTH_TOKEN:-}", "account_sid": "${TWILIO_ACCOUNT_SID:-}"}
FORGED = {"subject": "carol", "call_id": "c1", "session_id": "s1", "transport": "websocket"}


def basic(password: str) -> dict[str, str]:
    """What Twilio sends for a webhook URL written `https://twilio:<password>@host/…`."""
    return {"Authorization": "Basic " + base64.b64encode(f"twilio:{password}".encode()).decode()}


async def http(method: str, url: str, **kw) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.request(method, url, **kw) as r:
        return r.status, r.content_type, await r.text()


async def refused_upgrade(url: str, **kw) -> int:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(url, **kw)
    return refused.value.response.status_code


# ------------------------------------------------------------------------------ closed door


async def test_default_config_keeps_every_phone_route_shut(tmp_path, caplog):
    cfg = base_config(telephony={"twilio": DEFAULT_TWILIO})
    with caplog.at_level(logging.INFO):
        async with serve(tmp_path, cfg) as server:
            for route in ("/twilio/voice", "/twilio/status"):
                status, ctype, body = await http("POST", server.http + route, data=CALLER)
                assert (status, ctype) == (403, "application/json"), body
                error = json.loads(body)
                assert error["code"] == "phone_calls_off"
                assert "TWILIO_AUTH_TOKEN" in error["message"]
                assert "allow_unsigned" in error["message"]
            for route in ("/twilio/media", "/telephony/twilio/media"):
                assert await refused_upgrade(server.url + route) == 403
            assert server.runtime.calls_total == 0
    (line,) = [r for r in caplog.records if r.name == "voicebot.transports.phone_door"]
    assert line.levelno == logging.INFO  # not a risk: nothing is open
    assert "export TWILIO_AUTH_TOKEN" in line.getMessage()


async def test_a_public_url_without_an_auth_token_warns_at_start_up(tmp_path, caplog):
    cfg = base_config(
        telephony={"twilio": DEFAULT_TWILIO}, server={"public_url": "https://bot.example.com"}
    )
    with caplog.at_level(logging.INFO):
        async with serve(tmp_path, cfg):
            pass
    (line,) = [r for r in caplog.records if r.name == "voicebot.transports.phone_door"]
    assert line.levelno == logging.WARNING
    assert "TWILIO_AUTH_TOKEN" in line.getMessage() and "unsigned" in line.getMessage()


async def test_allow_unsigned_opens_the_door_loudly(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        async with serve(tmp_path, phone_config()) as server:
            status, _ = await answer(server, {**CALLER, "CallSid": "CA1"})
            assert status == 200
    (line,) = [r for r in caplog.records if r.name == "voicebot.transports.phone_door"]
    assert line.levelno == logging.WARNING and "WITHOUT any signature" in line.getMessage()


async def test_a_signed_door_logs_that_it_is_signed(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        async with serve(tmp_path, base_config(telephony={"twilio": {"auth_token": "t"}})):
            pass
    (line,) = [r for r in caplog.records if r.name == "voicebot.transports.phone_door"]
    assert line.levelno == logging.INFO and "signature" in line.getMessage()


# --------------------------------------------------------------------------- security.auth


async def test_with_auth_on_and_no_token_webhooks_need_a_credential(tmp_path, caplog):
    cfg = auth_config()
    cfg["telephony"] = {"twilio": DEFAULT_TWILIO}
    async with serve(tmp_path, cfg) as server:
        rec = record(server)
        for headers in ({}, basic("wrong"), {"Authorization": "Bearer nope"}):
            with caplog.at_level(logging.INFO):
                status, _ = await answer(server, {**CALLER, "CallSid": "CA1"}, headers=headers)
            assert status == 401
        assert any('"auth_failed"' in r.getMessage() for r in caplog.records)
        status, ctype, _ = await http("POST", f"{server.http}/twilio/status", data=CALLER)
        assert (status, ctype) == (401, "application/json")

        # anonymous streams: the upgrade is a WebSocket, but no call starts without a token
        bare = await Phone.dial(f"{server.url}/twilio/media", call_sid="CA9")
        await bare.connected()
        await bare.start(FORGED)
        assert await bare.wait_closed() == 1008
        assert server.runtime.calls_total == 0

        gateway = make_token(sub="phone-gateway")
        phone = await Phone.call(server, headers=basic(gateway))
        await phone.connected()
        await phone.start(FORGED)
        await phone.wait(lambda: phone.media)
        assert rec.calls[0].variables["subject"] == "phone-gateway"
        assert rec.calls[0].variables["From"] == CALLER["From"]
        await phone.stop()
        await phone.wait_closed()
        await assert_nothing_left(server)


async def test_a_stream_claiming_carol_neither_forges_her_nor_uses_her_quota(tmp_path, caplog):
    cfg = auth_config()
    cfg["security"]["limits"] = {"max_calls_per_subject": 1}
    cfg["telephony"] = {"twilio": {"auth_token": "tok"}}
    async with serve(tmp_path, cfg) as server:
        rec = record(server)
        phones = []
        with caplog.at_level(logging.INFO):
            for i in range(3):  # three signed phone calls whose streams claim to be carol
                phone = await Phone.call(server, auth_token="tok", call_sid=f"CA{i}")
                await phone.connected()
                await phone.start(FORGED)
                await phone.wait(lambda p=phone: p.media)
                phones.append(phone)
        assert [c.variables.get("subject") for c in rec.calls] == [None, None, None]
        assert all(c.session_id is None and c.transport == "twilio" for c in rec.calls)
        assert all(c.id != "c1" for c in rec.calls)
        audit = [json.loads(r.getMessage()) for r in caplog.records if r.name == "voicebot.audit"]
        assert [a["subject"] for a in audit if a["event"] == "call_started"] == [None] * 3
        assert any(
            "reserved variables from the wire ignored" in r.getMessage() for r in caplog.records
        )

        # carol's own call is not refused for "too many calls"
        carol = Client(
            await websockets.connect(f"{server.url}/ws/voice?token={make_token(sub='carol')}")
        )
        await carol.wait_for(lambda e: e.get("type") == "status")
        assert rec.calls[-1].variables["subject"] == "carol"
        await carol.close()
        for phone in phones:
            await phone.stop()
            await phone.wait_closed()
        await assert_nothing_left(server)


async def test_unsigned_door_drops_reserved_variables_too(tmp_path):
    async with serve(tmp_path, phone_config()) as server:
        rec = record(server)
        phone = await Phone.call(server)
        await phone.connected()
        await phone.start({**FORGED, "Custom": "kept"})
        await phone.wait(lambda: phone.media)
        variables = rec.calls[0].variables
        assert "subject" not in variables and TOKEN_PARAMETER not in variables
        assert variables["Custom"] == "kept" and variables["CallSid"] == "CA0001"
        await phone.stop()
        await phone.wait_closed()


# ------------------------------------------------------------------------ one-time tokens


async def test_a_stream_needs_a_fresh_token_from_the_webhook(tmp_path, caplog):
    async with serve(tmp_path, phone_config()) as server:
        rec = record(server)
        bare = await Phone.dial(f"{server.url}/twilio/media")  # no webhook before it
        await bare.connected()
        with caplog.at_level(logging.INFO):
            await bare.start()
            assert await bare.wait_closed() == 1008
        assert bare.ws.close_reason == "stream token missing, used or expired"
        assert any('"auth_failed"' in r.getMessage() for r in caplog.records)

        phone = await Phone.call(server)
        await phone.connected()
        await phone.start()
        await phone.wait(lambda: phone.media)
        replay = await Phone.dial(f"{server.url}/twilio/media")  # the same token, again
        replay.parameters = phone.parameters
        await replay.connected()
        await replay.start()
        assert await replay.wait_closed() == 1008

        _, doc = await answer(server, {**CALLER, "CallSid": "CA-other"})
        other = await Phone.dial(f"{server.url}/twilio/media", call_sid="CA-mine")
        other.parameters = stream_of(doc)[1]  # a token minted for another call
        await other.connected()
        await other.start()
        assert await other.wait_closed() == 1008

        assert len(rec.calls) == 1
        await phone.stop()
        await phone.wait_closed()
        await assert_nothing_left(server)


async def test_signed_door_mints_tokens_only_for_signed_webhooks(tmp_path):
    cfg = base_config(telephony={"twilio": {"auth_token": "tok"}})
    async with serve(tmp_path, cfg) as server:
        status, _ = await answer(server, {**CALLER, "CallSid": "CA1"}, auth_token="forged")
        assert status == 403
        url = f"{server.url}/twilio/media"
        # a signed upgrade is not enough either: Twilio signs every upgrade to the URL alike
        bare = await Phone.dial(url, {"X-Twilio-Signature": twilio_sign("tok", url)})
        await bare.connected()
        await bare.start()
        assert await bare.wait_closed() == 1008
        assert server.runtime.calls_total == 0


def test_tokens_are_single_use_expire_and_stay_bounded():
    now = [0.0]
    tokens = StreamTokens(ttl_s=30, capacity=3, clock=lambda: now[0])
    a = tokens.mint({"CallSid": "CA1"})
    assert tokens.take(a.replace(".", ".x")) is None  # a wrong secret does not burn it
    assert tokens.take(a) == {"CallSid": "CA1"}
    assert tokens.take(a) is None
    late = tokens.mint({})
    now[0] = 31
    assert tokens.take(late) is None
    for value in (None, 5, "", ".", "no-dot", "\ud800.x"):
        assert tokens.take(value) is None
    minted = [tokens.mint({"n": str(i)}) for i in range(10)]
    assert len(tokens) == 3
    assert tokens.take(minted[0]) is None and tokens.take(minted[-1]) == {"n": "9"}
