"""Outbound calls end to end: `POST /api/v1/calls` places a call through Twilio's REST API (a
wire-compatible fake on 127.0.0.1), Twilio's signed answer webhook starts the requested flow with
the request's variables, and its signed status callbacks fill the record `GET /api/v1/calls/{id}`
serves; a call that is never answered reaches the `call_ended` hook with its outcome."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap

import aiohttp
import pytest

from .support import base_config, serve
from .twilio_e2e_support import assert_nothing_left, record
from .twilio_phone import Phone, stream_of, twilio_sign
from .twilio_rest_fake import fake_twilio_rest

SID, TOKEN = "AC0123", "secret-token"
PUBLIC = "https://bot.example.com"
FLOW = """
nodes:
  hello:
    say: "Hi {{ call.name }}, this is your reminder."
    hangup: reminded
"""

MAIN = "nodes:\n  menu:\n    say: Main menu.\n    hangup: done\n"


@pytest.fixture
async def fake_twilio():
    async with fake_twilio_rest(SID, TOKEN) as fake:
        yield fake.url, fake


def config(tmp_path, api_base_url: str) -> dict:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "reminder.yaml").write_text(textwrap.dedent(FLOW))
    (tmp_path / "flows" / "main.yaml").write_text(MAIN)  # where inbound calls start
    cfg = base_config(dialogue={"mode": "flows"}, flows={"dir": "flows", "start": "main"})
    cfg["server"] = {"public_url": PUBLIC}
    cfg["telephony"] = {
        "twilio": {"account_sid": SID, "auth_token": TOKEN, "api_base_url": api_base_url}
    }
    return cfg


async def twilio_posts(server, path: str, form: dict[str, str]) -> tuple[int, str]:
    """A webhook as Twilio sends it: form-encoded, signed over the public URL."""
    headers = {"X-Twilio-Signature": twilio_sign(TOKEN, PUBLIC + path, form)}
    async with aiohttp.ClientSession() as http:
        async with http.post(server.http + path, data=form, headers=headers) as resp:
            return resp.status, await resp.text()


async def api(server, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, server.http + path, json=body) as resp:
            return resp.status, await resp.json()


async def test_an_outbound_call_from_request_to_record(tmp_path, fake_twilio):
    base_url, fake = fake_twilio
    async with serve(tmp_path, config(tmp_path, base_url)) as server:
        rec = record(server)
        status, call = await api(
            server,
            "POST",
            "/api/v1/calls",
            {
                "to": "+15551234567",
                "from": "+15557654321",
                "flow": "reminder",
                "variables": {"name": "Ada"},
            },
        )
        assert status == 201, call
        assert call["id"] == "CA9001" and call["status"] == "queued" and call["outcome"] is None
        (req,) = fake.requests
        form = dict(req.form)
        assert form["To"] == "+15551234567" and form["From"] == "+15557654321"
        assert form["Url"] == f"{PUBLIC}/twilio/voice"
        assert form["StatusCallback"] == f"{PUBLIC}/twilio/status"

        progress = {"CallSid": "CA9001", "AccountSid": SID, "Direction": "outbound-api"}
        assert (
            await twilio_posts(server, "/twilio/status", {**progress, "CallStatus": "ringing"})
        )[0] == 204
        assert (await api(server, "GET", "/api/v1/calls/CA9001"))[1]["status"] == "ringing"

        # answered: Twilio fetches the voice webhook, then opens the stream it answered with
        answer = {
            **progress,
            "From": "+15557654321",
            "To": "+15551234567",
            "CallStatus": "in-progress",
            "AnsweredBy": "human",
        }
        status, doc = await twilio_posts(server, "/twilio/voice", answer)
        assert status == 200, doc
        _, parameters = stream_of(doc)
        assert "voicebot_flow" not in parameters and "name" not in parameters  # not on the wire
        await twilio_posts(server, "/twilio/status", {**progress, "CallStatus": "in-progress"})
        signature = twilio_sign(TOKEN, PUBLIC.replace("https", "wss") + "/twilio/media")
        phone = await Phone.dial(
            f"{server.url}/twilio/media", {"X-Twilio-Signature": signature}, call_sid="CA9001"
        )
        phone.parameters = parameters
        await phone.connected()
        await phone.start()
        await rec.wait(lambda: rec.ended)
        (call_obj,) = rec.calls
        assert call_obj.variables["name"] == "Ada"
        assert call_obj.variables["call_sid"] == "CA9001"
        assert call_obj.variables["direction"] == "outbound"
        assert call_obj.variables["answered_by"] == "human"  # Twilio's AnsweredBy
        assert rec.spoken[0][0] == "Hi Ada, this is your reminder."
        await twilio_posts(
            server, "/twilio/status", {**progress, "CallStatus": "completed", "CallDuration": "12"}
        )
        status, call = await api(server, "GET", "/api/v1/calls/CA9001")
        assert (call["status"], call["outcome"], call["duration_s"]) == (
            "completed",
            "answered",
            12,
        )
        assert call["answered_at"] <= call["ended_at"]

        # a second call is busy: never answered, so the record goes to `call_ended` itself
        status, call = await api(
            server, "POST", "/api/v1/calls", {"to": "+15551234568", "from": "+15557654321"}
        )
        assert status == 201 and call["id"] == "CA9002"
        busy = {"CallSid": "CA9002", "AccountSid": SID, "CallStatus": "busy"}
        assert (await twilio_posts(server, "/twilio/status", busy))[0] == 204
        assert rec.ended[-1] == "busy"
        status, call = await api(server, "GET", "/api/v1/calls/CA9002")
        assert (call["status"], call["outcome"], call["duration_s"]) == ("busy", "busy", 0.0)
        await assert_nothing_left(server)


async def test_bad_requests_get_json_errors(tmp_path, fake_twilio):
    base_url, fake = fake_twilio
    async with serve(tmp_path, config(tmp_path, base_url)) as server:
        cases = [
            ({"to": "555-1234", "from": "+15557654321"}, 400, "invalid_number"),
            ({"to": "+15551234567"}, 400, "invalid_number"),
            ({"to": "+15551234567", "from": "+15557654321", "flow": "nope"}, 400, "unknown_flow"),
            (
                {"to": "+15551234567", "from": "+15557654321", "variables": {"a": 1}},
                400,
                "invalid_body",
            ),
            (
                {"to": "+15551234567", "from": "+15557654321", "carrier": "telnyx"},
                409,
                "cannot_place_calls",
            ),
        ]
        for body, status, code in cases:
            got_status, got = await api(server, "POST", "/api/v1/calls", body)
            assert (got_status, got["code"]) == (status, code), body
        assert (await api(server, "GET", "/api/v1/calls/CAnope"))[1]["code"] == "unknown_call"
        # a status callback for a call we did not place changes nothing
        await twilio_posts(server, "/twilio/status", {"CallSid": "CAx", "CallStatus": "busy"})
    assert fake.requests == []


async def test_voicebot_call_places_it_with_an_api_key(tmp_path, fake_twilio):
    """`voicebot call` against the running server; `/api/v1/calls` needs `security.auth`."""
    base_url, fake = fake_twilio
    cfg = config(tmp_path, base_url)
    cfg["security"] = {"auth": {"mode": "api_key", "api_keys": ["k-one"]}}
    async with serve(tmp_path, cfg) as server:
        assert (await api(server, "POST", "/api/v1/calls", {}))[0] == 401

        async def voicebot_call(*extra: str) -> tuple[int, str, str]:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "voicebot.cli",
                "call",
                "+15551234567",
                "--from",
                "+15557654321",
                "--flow",
                "reminder",
                "--var",
                "name=Ada",
                "--server",
                server.http,
                *extra,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            return proc.returncode, out.decode(), err.decode()

        code, out, err = await voicebot_call()
        assert code == 1 and "401" in err and fake.requests == []
        code, out, err = await voicebot_call("--api-key", "k-one")
        assert code == 0, err
        call = json.loads(out)
        assert (call["id"], call["flow"], call["variables"]) == (
            "CA9001",
            "reminder",
            {"name": "Ada"},
        )
        assert fake.requests[0].get("To") == "+15551234567"


async def test_twilio_refusals_answer_502_with_twilio_s_reason(tmp_path, fake_twilio):
    base_url, fake = fake_twilio
    fake.refuse["+15550000500"] = (500, 20500, "Internal Server Error")
    cfg = config(tmp_path, base_url)
    async with serve(tmp_path, cfg) as server:
        status, got = await api(
            server, "POST", "/api/v1/calls", {"to": "+15550000500", "from": "+15557654321"}
        )
        assert (status, got["code"]) == (502, "carrier_refused")
        assert "Twilio refused to call +15550000500: HTTP 500" in got["message"]
        fake.auth_token = "rotated"  # the account's token changed under the running server
        status, got = await api(
            server, "POST", "/api/v1/calls", {"to": "+15551234567", "from": "+15557654321"}
        )
        assert (status, got["code"]) == (502, "carrier_refused")
        assert "HTTP 401" in got["message"] and "code 20003" in got["message"]
        assert (await api(server, "GET", "/api/v1/calls/CA9001"))[0] == 404  # nothing recorded
