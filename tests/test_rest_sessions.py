"""`POST /api/v1/sessions` cannot fill memory: each field, the store's count and bytes, and each
client's creation rate are bounded, and every refusal is a 4xx/503 with a JSON reason."""

from __future__ import annotations

import json

import aiohttp
import websockets

from voicebot.server.appkeys import SESSIONS

from .support import Client, base_config, serve
from .test_auth import auth_config, make_token
from .test_sessions import flows_config


def sessions_config(cfg=None, **sessions):
    cfg = cfg or base_config()
    cfg.setdefault("security", {})["sessions"] = sessions
    return cfg


async def post(http, server, body, headers=None):
    async with http.post(f"{server.http}/api/v1/sessions", json=body, headers=headers) as r:
        return r.status, await r.json(), r.headers


async def test_each_field_is_bounded_and_nothing_oversized_is_kept(tmp_path):
    async with serve(tmp_path, sessions_config(max_field_bytes=1024)) as server:
        store = server.runner.app[SESSIONS]
        async with aiohttp.ClientSession() as http:
            big = "x" * 1025
            for body in ({"namespace": big}, {"metadata": {"k": big}}, {"flow": big}):
                status, err, _ = await post(http, server, body)
                assert status == 413 and err["code"] == "field_too_long", (body.keys(), err)
            # the attack of the report (MiBs per field): refused before the body is read
            status, err, _ = await post(http, server, {"metadata": {"k": "m" * (1 << 20)}})
            assert status == 413 and err["code"] == "body_too_large"
            assert len(store) == 0 and store.total_bytes == 0
            status, ok, _ = await post(http, server, {"namespace": "n" * 1024, "metadata": {}})
            assert status == 200
        kept = store.get(ok["session_id"])
        assert kept.namespace == "n" * 1024
        assert not hasattr(kept, "metadata")  # checked, then not stored: nothing reads it


async def test_wrong_types_are_400_with_a_reason(tmp_path):
    async with serve(tmp_path, base_config()) as server, aiohttp.ClientSession() as http:
        for body in ({"namespace": 5}, {"namespace": ["a"]}, {"metadata": [1]}, {"flow": 5}):
            status, err, _ = await post(http, server, body)
            assert status == 400 and err["code"] == "invalid_body", body
            assert err["type"] == "error" and err["message"]


async def test_the_store_is_bounded_in_count_and_refuses_with_retry_after(tmp_path):
    cfg = sessions_config(max_sessions=5, create_burst=100)
    async with serve(tmp_path, cfg) as server, aiohttp.ClientSession() as http:
        for _ in range(5):
            assert (await post(http, server, {}))[0] == 200
        status, err, headers = await post(http, server, {})
        assert status == 503 and err["code"] == "sessions_full"
        assert 1 <= int(headers["Retry-After"]) <= 900
        # a chat is a session too: it is refused the same way, and the pending ones are kept
        async with http.post(f"{server.http}/api/chat", json={"text": "hi"}) as r:
            assert r.status == 503 and (await r.json())["code"] == "sessions_full"
        assert len(server.runner.app[SESSIONS]) == 5


async def test_the_store_is_bounded_in_bytes(tmp_path):
    cfg = sessions_config(max_total_bytes=64 * 1024, max_field_bytes=2048, create_burst=1000)
    async with serve(tmp_path, cfg) as server, aiohttp.ClientSession() as http:
        store = server.runner.app[SESSIONS]
        statuses = [(await post(http, server, {"namespace": "n" * 2048}))[0] for _ in range(40)]
        accepted = statuses.count(200)
        assert statuses == [200] * accepted + [503] * (40 - accepted)
        assert 10 < accepted < 40  # ~2.5 KB each against 64 KiB
        assert store.total_bytes <= 64 * 1024
        status, err, _ = await post(http, server, {"namespace": "n" * 2048})
        assert status == 503 and err["code"] == "sessions_full" and "storage" in err["message"]


async def test_creation_is_rate_limited_per_address(tmp_path):
    cfg = sessions_config(create_burst=3, create_per_minute=60)
    async with serve(tmp_path, cfg) as server:
        async with aiohttp.ClientSession() as http:
            for _ in range(3):
                assert (await post(http, server, {}))[0] == 200
            status, err, headers = await post(http, server, {})
            assert status == 429 and err["code"] == "rate_limited"
            assert headers["Retry-After"] == "1"  # one token a second
            async with http.post(f"{server.http}/api/chat", json={"text": "hi"}) as r:
                assert r.status == 429  # a new chat is a new session
        # another address (all of 127/8 is loopback) has its own budget
        other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=other) as http:
            assert (await post(http, server, {}))[0] == 200


async def test_creation_is_rate_limited_per_subject(tmp_path):
    cfg = sessions_config(auth_config(), create_burst=2, create_per_minute=1)
    alice = {"Authorization": f"Bearer {make_token()}"}
    bob = {"Authorization": f"Bearer {make_token(sub='bob')}"}
    async with serve(tmp_path, cfg) as server, aiohttp.ClientSession() as http:
        assert [(await post(http, server, {}, alice))[0] for _ in range(3)] == [200, 200, 429]
        status, _, headers = await post(http, server, {}, alice)
        assert status == 429 and 1 <= int(headers["Retry-After"]) <= 60
        assert (await post(http, server, {}, bob))[0] == 200  # same address, other subject


async def test_flow_must_be_a_known_flow_name(tmp_path):
    async with serve(tmp_path, flows_config()) as server, aiohttp.ClientSession() as http:
        for flow in ("../../etc/passwd", "nosuch", ""):
            status, err, _ = await post(http, server, {"flow": flow})
            assert status == 400 and err["code"] == "unknown_flow", flow
        for flow in (5, ["main"], {"a": 1}):
            status, err, _ = await post(http, server, {"flow": flow})
            assert status == 400 and err["code"] == "invalid_body", flow
        status, ok, _ = await post(http, server, {"flow": "booking"})
        assert status == 200
        c = Client(await websockets.connect(ok["ws_url"]))
        _, first = await c.wait_for(lambda e: e.get("status") == "connected")
        assert server.runtime.calls[first["call_id"]].info()["flow"] == "booking"
        await c.close()


async def test_no_flow_names_outside_flows_mode(tmp_path):
    async with serve(tmp_path, base_config()) as server, aiohttp.ClientSession() as http:
        status, err, _ = await post(http, server, {"flow": "main"})
        assert status == 400 and err["code"] == "unknown_flow"


async def test_ws_url_uses_public_url(tmp_path):
    cfg = base_config(server={"public_url": "https://voice.example.com/"})
    async with serve(tmp_path, cfg) as server, aiohttp.ClientSession() as http:
        _, ok, _ = await post(http, server, {}, {"Host": "evil.example"})
        assert ok["ws_url"] == f"wss://voice.example.com/ws/voice?session_id={ok['session_id']}"


async def test_ws_url_never_reflects_a_forged_host(tmp_path):
    async with serve(tmp_path, base_config()) as server, aiohttp.ClientSession() as http:
        forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
        _, ok, _ = await post(http, server, {}, forged)
        assert "evil" not in json.dumps(ok)
        assert ok["ws_url"] == f"{server.url}/ws/voice?session_id={ok['session_id']}"
