"""A new carrier is one plugin and no core edit: `tests/acme_telephony.py` answers its own
webhook, streams the call with the core's one-time token, and hangs up through its own (fake,
loopback) REST API when the bot ends the call."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
import websockets
from aiohttp import web

from voicebot.hookspecs import hookimpl
from voicebot.plugins import PluginError, PluginManager
from voicebot.telephony.carrier import Carrier

from . import acme_telephony
from .acme_telephony import AcmeSerializer
from .support import base_config, serve
from .twilio_e2e_support import assert_nothing_left, record

FLOW = "nodes:\n  hello:\n    say: Hi.\n    next: bye\n  bye:\n    hangup: done\n"


@pytest.fixture
async def fake_acme():
    """Acme's REST API on 127.0.0.1: records hang-ups."""
    hangups: list[tuple[str, str]] = []
    hung_up = asyncio.Event()

    async def hangup(request: web.Request) -> web.Response:
        hangups.append((request.match_info["call"], request.headers.get("Authorization", "")))
        hung_up.set()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/calls/{call}/hangup", hangup)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", hangups, hung_up
    await runner.cleanup()


def acme_config(tmp_path, api: str = "", **acme) -> dict:
    (tmp_path / "flows").mkdir(exist_ok=True)
    (tmp_path / "flows" / "main.yaml").write_text(FLOW)
    cfg = base_config(dialogue={"mode": "flows"}, flows={"dir": "flows", "start": "main"})
    cfg["plugins"] = [*cfg["plugins"], "tests.acme_telephony"]
    cfg["telephony"] = {"acme": {"api_key": "k", "api_base_url": api, **acme}}
    return cfg


async def answer(server, body: dict) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.http}/acme/answer", json=body) as r:
            return r.status, await r.json()


async def test_acme_answers_streams_and_hangs_up_through_its_own_api(tmp_path, fake_acme):
    api, hangups, hung_up = fake_acme
    async with serve(tmp_path, acme_config(tmp_path, api, allow_unsigned=True)) as server:
        rec = record(server)
        status, doc = await answer(server, {"call": "C7", "from": "+15550001", "to": "+15550002"})
        assert status == 200 and doc["action"] == "stream"
        assert doc["url"] == f"{server.url}/telephony/acme/media"
        wire_vars = {**doc["vars"], "subject": "forged", "From": "+1999"}
        async with websockets.connect(doc["url"]) as ws:
            start = {"type": "session.start", "session": "S7", "call": "C7", "vars": wire_vars}
            await ws.send(json.dumps(start))
            label = None
            while label is None:  # the greeting, then the label to echo once it played
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                label = msg.get("label") if msg["type"] == "label" else None
            await ws.send(json.dumps({"type": "played", "label": label}))
            # the flow hangs up: Acme's API is told, then the stream closes
            await asyncio.wait_for(hung_up.wait(), 10)
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
        assert hangups == [("C7", "Bearer k")]
        (call,) = rec.calls
        # the variables are the ones the answer webhook vouched for, not the wire's
        assert call.variables["From"] == "+15550001" and "subject" not in call.variables
        assert call.variables["call_sid"] == "C7" and call.transport == "acme"
        await assert_nothing_left(server)


async def test_acme_token_is_one_time_and_bound_to_its_call(tmp_path):
    async with serve(tmp_path, acme_config(tmp_path, allow_unsigned=True)) as server:
        _, doc = await answer(server, {"call": "C1"})
        start = {"type": "session.start", "session": "S1", "call": "C2", "vars": doc["vars"]}
        async with websockets.connect(doc["url"]) as ws:  # minted for C1, used by C2
            await ws.send(json.dumps(start))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd.code == 1008
        async with websockets.connect(doc["url"]) as ws:  # the token is spent either way
            await ws.send(json.dumps({**start, "call": "C1"}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd.code == 1008
        await assert_nothing_left(server)


async def test_acme_webhooks_sit_behind_the_core_phone_door(tmp_path):
    async with serve(tmp_path, acme_config(tmp_path)) as server:  # no allow_unsigned, no auth
        status, body = await answer(server, {"call": "C1"})
        assert status == 403 and body["code"] == "phone_calls_off"
    async with serve(tmp_path, acme_config(tmp_path, allow_unsigned=True)) as server:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.http}/acme/answer", data=b"[1]") as r:
                assert r.status == 400 and (await r.json())["code"] == "bad_json"


class LegacyAcme:
    """A plugin written against the deprecated `register_transports` hook."""

    @staticmethod
    @hookimpl
    def register_transports(register):
        register("acme", AcmeSerializer)


def test_register_transports_still_registers_a_media_only_carrier():
    pm = PluginManager()
    pm.register(LegacyAcme, "legacy")
    assert pm.registry.transports == {"acme": AcmeSerializer}
    assert pm.registry.carriers == {"acme": Carrier(serializer=AcmeSerializer)}


def test_two_plugins_cannot_register_the_same_carrier():
    pm = PluginManager()
    pm.register(acme_telephony, "acme")
    pm.register(LegacyAcme, "legacy")
    with pytest.raises(PluginError, match="registered twice"):
        _ = pm.registry
