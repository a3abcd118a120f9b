"""Two instances sharing one real Redis: fleet-wide limits that never over-admit, the fleet's
calls list, hang-up across instances, and sessions that resume on the other instance."""

from __future__ import annotations

import asyncio
import contextlib
import json

import aiohttp
import pytest
import websockets

from .redis_support import needs_redis, redis_server, until
from .support import Client, serve
from .test_sessions import flows_config, say

pytestmark = needs_redis

CLOSE_TRY_LATER = 1013


def cluster_config(redis_url: str, name: str, **cluster) -> dict:
    cfg = flows_config()
    cfg["cluster"] = {
        "redis_url": redis_url,
        "instance_id": name,
        "heartbeat_s": 0.2,
        "slot_ttl_s": 1.0,
        **cluster,
    }
    return cfg


@contextlib.asynccontextmanager
async def fleet(tmp_path, **cluster):
    async with redis_server(tmp_path) as redis:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        async with (
            serve(tmp_path / "a", cluster_config(redis.url, "a", **cluster)) as a,
            serve(tmp_path / "b", cluster_config(redis.url, "b", **cluster)) as b,
        ):
            yield redis, a, b


async def connect(server, query: str = "") -> tuple[Client, dict]:
    c = Client(await websockets.connect(f"{server.url}/ws/voice?{query}"))
    _, first = await c.wait_for(lambda e: e.get("status") == "connected")
    return c, first


async def try_connect(server) -> Client | int:
    """A connected client, or the close code it was refused with."""
    ws = await websockets.connect(f"{server.url}/ws/voice")
    c = Client(ws)
    with contextlib.suppress(AssertionError):
        await c.wait_for(lambda e: e.get("status") == "connected")
        return c
    return ws.close_code


async def test_many_calls_at_once_on_two_instances_never_over_admit(tmp_path):
    async with fleet(tmp_path, max_calls=5) as (_, a, b):
        results = await asyncio.gather(*(try_connect(a if i % 2 else b) for i in range(16)))
        connected = [r for r in results if isinstance(r, Client)]
        assert len(connected) == 5  # per instance 500 would allow all 16
        assert sorted(r for r in results if isinstance(r, int)) == [CLOSE_TRY_LATER] * 11
        assert len(a.runtime.calls) + len(b.runtime.calls) == 5
        for c in connected:
            await c.close()
        await until(lambda: not a.runtime.calls and not b.runtime.calls)
        await until(lambda: a.runtime.cluster.slots == {} and b.runtime.cluster.slots == {})
        again = await try_connect(a)  # released slots are free again
        assert isinstance(again, Client)
        await again.close()


async def test_per_subject_limits_and_rates_are_atomic_across_instances(tmp_path):
    async with fleet(tmp_path, calls_per_subject_per_minute=7) as (_, a, b):
        ca, cb = a.runtime.cluster, b.runtime.cluster
        per_subject = a.runtime.config.security.limits.max_calls_per_subject
        answers = await asyncio.gather(
            *((ca if i % 2 else cb).admit(f"slot-{i}", "alice") for i in range(20))
        )
        assert sum(why is None for why in answers) == per_subject
        assert {w for w in answers if w} == {"too many concurrent calls for this subject"}
        assert (await ca.admit("bob-1", "bob")) is None  # another subject has its own count
        for i, why in enumerate(answers):
            if why is None:
                await (ca if i % 2 else cb).release(f"slot-{i}")
        # the rate: 7 admissions a minute for alice, 5 of them used above
        assert await ca.admit("late-1", "alice") is None
        assert await cb.admit("late-2", "alice") is None
        assert await ca.admit("late-3", "alice") == (
            "too many new calls for this subject; slow down"
        )


async def test_fleet_calls_list_and_hang_up_across_instances(tmp_path):
    async with fleet(tmp_path) as (_, a, b):
        on_b, first = await connect(b)
        call_id = first["call_id"]
        async with aiohttp.ClientSession() as http:
            listed: dict = {}

            async def listed_everywhere() -> bool:
                r = await http.get(f"{a.http}/calls?scope=cluster")
                listed.update(await r.json())
                return bool(listed["calls"])

            await until(listed_everywhere)  # b lists its call as the call starts
            assert listed["scope"] == "cluster"
            assert [(c["call_id"], c["instance"]) for c in listed["calls"]] == [(call_id, "b")]
            r = await http.get(f"{a.http}/calls")  # this instance's own, as before
            assert (await r.json())["calls"] == []
            r = await http.delete(f"{a.http}/api/v1/calls/{call_id}")
            assert r.status == 200, await r.text()
            assert (await r.json())["instance"] == "b"
            await asyncio.wait_for(on_b.closed.wait(), 5)
            assert on_b.ws.close_code == 1000
            r = await http.delete(f"{a.http}/api/v1/calls/{call_id}")
            assert r.status == 404
            assert (await r.json())["code"] == "not_found"
            r = await http.post(f"{b.http}/api/v1/calls/nope/transfer", json={"target": "+1555"})
            assert r.status == 404


async def test_transfer_reaches_the_call_on_the_other_instance(tmp_path):
    async with fleet(tmp_path) as (_, a, b):
        on_b, first = await connect(b)
        async with aiohttp.ClientSession() as http:
            r = await http.post(
                f"{a.http}/api/v1/calls/{first['call_id']}/transfer", json={"target": "+15550100"}
            )
            # the browser gets the `transfer` event; a browser call cannot be moved by us
            assert r.status == 409
            assert (await r.json())["code"] == "transfer_failed"
            _, ev = await on_b.wait_for(lambda e: e.get("type") == "transfer")
            assert ev["target"] == "+15550100"
            r = await http.post(f"{a.http}/api/v1/calls/x/transfer", json={"target": ""})
            assert r.status == 400
        await on_b.close()


async def test_session_made_on_one_instance_resumes_on_the_other(tmp_path):
    async with fleet(tmp_path) as (_, a, b):
        async with aiohttp.ClientSession() as http:
            r = await http.post(f"{a.http}/api/v1/sessions", json={})
            sid = (await r.json())["session_id"]
        c, first = await connect(b, f"session_id={sid}")
        assert first["resumed"] is False
        await c.wait_for(lambda e: e.get("type") == "response" and "book a table" in e["text"])
        await say(c, "I would like to book a table", "For how many people?")
        await say(c, "four", "For what day and time?")
        c.ws.transport.abort()  # the network went away
        await until(lambda: not b.runtime.calls and b.runtime.cluster.sessions.idle)
        c2, first2 = await connect(a, f"session_id={sid}")
        assert first2["resumed"] is True
        _, again = await c2.wait_for(lambda e: e.get("type") == "response" and e["final"])
        assert "For what day and time?" in again["text"] and "Welcome" not in again["text"]
        (call,) = a.runtime.calls.values()
        assert call.dialogue.snapshot()["slots"]["party_size"] == 4
        await c2.close()


async def test_reconnect_on_the_other_instance_takes_the_live_call_over(tmp_path):
    async with fleet(tmp_path) as (_, a, b):
        async with aiohttp.ClientSession() as http:
            r = await http.post(f"{b.http}/api/v1/sessions", json={})
            sid = (await r.json())["session_id"]
        old, _ = await connect(a, f"session_id={sid}")
        await say(old, "book a table", "For how many people?")
        await until(lambda: a.runtime.cluster.sessions.idle)
        new, first = await connect(b, f"session_id={sid}")  # a still thinks `old` is open
        assert first["resumed"] is True
        await asyncio.wait_for(old.closed.wait(), 5)
        await say(new, "two", "For what day and time?")
        await until(lambda: not a.runtime.calls)
        await new.close()


async def test_session_state_in_redis_is_bounded_and_encrypted(tmp_path):
    from cryptography.fernet import Fernet
    from redis.asyncio import Redis

    key = Fernet.generate_key().decode()
    async with redis_server(tmp_path) as redis:
        cfg = cluster_config(redis.url, "a", max_session_bytes=1024)
        cfg["storage"] = {"encrypt_key": key}
        async with serve(tmp_path, cfg) as a:
            async with aiohttp.ClientSession() as http:
                r = await http.post(f"{a.http}/api/v1/sessions", json={})
                sid = (await r.json())["session_id"]
            c, _ = await connect(a, f"session_id={sid}")
            await say(c, "I would like to book a table", "For how many people?")
            await until(lambda: a.runtime.cluster.sessions.idle)
            client = Redis.from_url(redis.url)
            raw = await client.get(f"voicebot:session:{sid}:state")
            assert raw is not None and b"table" not in raw and b"history" not in raw
            state = json.loads(Fernet(key.encode()).decrypt(raw))
            assert state["live_on"] == "a" and state["snapshot"]["dialogue"]
            assert len(json.dumps(state["snapshot"])) <= 1024
            sync = a.runtime.cluster.sessions
            big = {"dialogue": {}, "history": [{"text": "x" * 100}] * 100}
            assert len(json.dumps(sync.bounded(big))) <= 1024
            assert sync.bounded({"dialogue": {"x": "y" * 2000}, "history": []}) is None
            await c.close()
            await until(lambda: not a.runtime.calls)
            async with aiohttp.ClientSession() as http:
                r = await http.delete(f"{a.http}/api/v1/sessions/{sid}")
                assert r.status == 200
            await until(lambda: a.runtime.cluster.sessions.idle)
            keys = (f"voicebot:session:{sid}", f"voicebot:session:{sid}:state")
            assert await client.exists(*keys) == 0  # erased with the session
            await client.aclose()


@pytest.mark.parametrize("scope", ["", "?scope=cluster"])
async def test_a_single_instance_without_redis_answers_as_before(tmp_path, scope):
    async with serve(tmp_path, flows_config()) as a:
        c, first = await connect(a)
        async with aiohttp.ClientSession() as http:
            r = await http.get(f"{a.http}/calls{scope}")
            calls = (await r.json())["calls"]
            assert [x["call_id"] for x in calls] == [first["call_id"]]
            r = await http.get(f"{a.http}/health")
            assert (await r.json())["cluster"]["mode"] == "local"
            r = await http.delete(f"{a.http}/api/v1/calls/{first['call_id']}")
            assert r.status == 200
        await asyncio.wait_for(c.closed.wait(), 5)
