"""Exotel transfers through the call flow, end to end over real sockets: the bot's flow
transfers, the stream ends cleanly, and the applets after Voicebot then ask voicebot what to do
as Exotel would: the Passthru (`/exotel/transfer-pending`: 200 or 302) and the Connect applet's
dynamic URL (`/exotel/transfer-target`: the number, in Programmable Connect's JSON or as text),
each with valid and forged basic auth; an unknown CallSid gets a 404 JSON. Behind a load
balancer the applet's request may reach another instance: it reads the target from Redis."""

from __future__ import annotations

import aiohttp

from voicebot.config import load_config
from voicebot.plugins import make_plugin_manager
from voicebot.server.telephony import transfer_problems
from voicebot.telephony.values import LocalValues

from .redis_support import needs_redis, redis_server
from .support import serve
from .test_exotel_e2e import CALL, QUERY, answered_call, basic, exotel_config
from .twilio_e2e_support import assert_nothing_left, record

TARGET = "+919876543210"
FLOW = f"nodes:\n  hello:\n    say: Hi.\n    next: agent\n  agent:\n    transfer: '{TARGET}'\n"
#: what Exotel sends a Connect applet's URL (and a Passthru's), in its query string
APPLET_QUERY = {**QUERY, "CallStatus": "in-progress", "CurrentTime": "2026-01-15 10:30:00"}


def transfer_config(tmp_path) -> dict:
    cfg = exotel_config(tmp_path, flow=True)
    (tmp_path / "flows" / "main.yaml").write_text(FLOW)
    return cfg


async def applet(
    server, path: str, headers: dict[str, str], **query: str
) -> tuple[int, str, object]:
    """Exotel's GET to an applet URL: (status, content type, body as JSON or text)."""
    params = {**APPLET_QUERY, **query}
    headers = {"Exotel-Version": "1.0", **headers}
    async with aiohttp.ClientSession() as http:
        url = f"{server.http}{path}"
        async with http.get(url, params=params, headers=headers, allow_redirects=False) as r:
            body = await r.json() if r.content_type == "application/json" else await r.text()
            return r.status, r.content_type, body


async def transferred_call(server) -> None:
    """A call whose flow greets, then transfers: the stream ends cleanly, no hang-up."""
    rec = record(server)
    phone = await answered_call(server)
    await phone.wait(phone.idle)  # "Hi." heard
    assert await phone.wait_closed() == 1000  # Exotel's flow moves on to the next applet
    await rec.wait(lambda: rec.ended)
    assert rec.ended == [f"bot: transferred to {TARGET}"]
    await assert_nothing_left(server)


async def test_a_flow_transfer_is_carried_out_by_the_applets_after_voicebot(tmp_path):
    async with serve(tmp_path, transfer_config(tmp_path)) as server:
        # before the call transfers, nothing is pending: Passthru's other branch, Connect 404
        assert (await applet(server, "/exotel/transfer-pending", basic()))[0] == 302
        await transferred_call(server)

        status, _, body = await applet(server, "/exotel/transfer-pending", basic())
        assert (status, body) == (200, {"transfer": True, "call_sid": CALL})
        status, kind, body = await applet(server, "/exotel/transfer-target", basic())
        assert (status, kind) == (200, "application/json")
        assert body == {"fetch_after_attempt": False, "destination": {"numbers": [TARGET]}}
        status, kind, body = await applet(server, "/exotel/transfer-target", basic(), format="text")
        assert (status, kind, body) == (200, "text/plain", TARGET)

        # forged or missing credentials: refused before anything is looked up
        for headers in (basic(password="wrong-token-0123"), basic(user="other"), {}):
            for path in ("/exotel/transfer-target", "/exotel/transfer-pending"):
                status, _, body = await applet(server, path, headers)
                assert status == 403 and body["code"] == "bad_signature", (path, body)

        # a call that never transferred (or an unknown one): a clear 404, and Passthru's 302
        status, _, body = await applet(server, "/exotel/transfer-target", basic(), CallSid="nope")
        assert status == 404 and body["code"] == "no_transfer" and "nope" in body["message"]
        assert (await applet(server, "/exotel/transfer-pending", basic(), CallSid="nope"))[0] == 302
        status, _, body = await applet(server, "/exotel/transfer-target", basic(), CallSid="")
        assert status == 400 and body["code"] == "no_call_sid"


@needs_redis
async def test_the_connect_applet_may_ask_another_instance(tmp_path):
    async with redis_server(tmp_path) as redis:
        servers = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            cfg = transfer_config(tmp_path / name)
            cfg["cluster"] = {"redis_url": redis.url, "instance_id": name}
            servers.append(serve(tmp_path / name, cfg))
        async with servers[0] as a, servers[1] as b:
            await transferred_call(a)
            status, _, body = await applet(b, "/exotel/transfer-target", basic())
            assert status == 200 and body["destination"] == {"numbers": [TARGET]}
            assert (await applet(b, "/exotel/transfer-pending", basic()))[0] == 200


async def test_local_values_expire_and_stay_bounded():
    values = LocalValues(capacity=2)
    await values.put("gone", "x", ttl_s=0.0)
    assert await values.get("gone") is None
    for key in ("a", "b", "c"):
        await values.put(key, key, ttl_s=60)
    assert [await values.get(k) for k in ("a", "b", "c")] == [None, "b", "c"]


def test_check_accepts_exotel_transfers_once_its_applets_can_reach_voicebot(tmp_path):
    registry = make_plugin_manager().registry
    path = tmp_path / "config.yaml"
    path.write_text("telephony:\n  exotel: {username: u}\n")
    (problem,) = transfer_problems(load_config(path, env={}), registry)
    assert "telephony.exotel.username and password" in problem
    path.write_text("telephony:\n  exotel: {username: u, password: p}\n")
    assert transfer_problems(load_config(path, env={}), registry) == []
