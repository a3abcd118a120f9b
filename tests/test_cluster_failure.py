"""A fleet's bad days against a real redis-server that the tests stop and restart: Redis down at
start, Redis lost mid-run (calls go on, admission falls back to local limits, recovery without
a restart), a crashed instance's slots reclaimed by expiry; and phone calls pinned to the
instance that answered."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import aiohttp
import pytest
import websockets
import yaml
from redis.asyncio import Redis

from voicebot.cluster.state import ClusterUnavailable
from voicebot.config import load_config
from voicebot.config.options import ConfigError
from voicebot.runtime import Runtime

from .redis_support import free_port, needs_redis, redis_server, until
from .support import serve
from .test_cluster import cluster_config, connect
from .test_sessions import say
from .test_twilio_transfer import config as transfer_config
from .test_twilio_transfer import fake_twilio, live_call  # noqa: F401 (fake_twilio: a fixture)
from .twilio_phone import Phone, answer, stream_of, twilio_sign

pytestmark = needs_redis


async def test_redis_down_at_start_refuses_to_start(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cluster_config(url, "a")))
    runtime = Runtime(load_config(path, env={}))
    with pytest.raises(ClusterUnavailable, match="cannot reach Redis"):
        await runtime.start()
    assert runtime.providers == {}  # refused before any model loads
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from voicebot.cli import main; sys.exit(main(sys.argv[1:]))",
        *("run", "--config", str(path), "--port", "0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    err = stderr.decode()
    assert "error: cluster.redis_url: cannot reach Redis at redis://" in err
    assert "Traceback" not in err


async def test_redis_lost_mid_run_degrades_then_recovers_without_restart(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "voicebot.cluster")
    async with (
        redis_server(tmp_path) as redis,
        serve(tmp_path, cluster_config(redis.url, "a", max_calls=2)) as a,
    ):
        cluster = a.runtime.cluster
        first, _ = await connect(a)
        await first.wait_for(lambda e: e.get("type") == "response" and "book a table" in e["text"])
        await redis.stop()
        await until(lambda: not cluster.up)  # the heartbeat noticed
        await say(first, "I would like to book a table", "For how many people?")  # goes on
        second, _ = await connect(a)  # admitted on local limits
        third, _ = await connect(a)  # the fleet's 2 is not known now: local 500 applies
        async with aiohttp.ClientSession() as http:
            health = await (await http.get(f"{a.http}/health")).json()
            assert health["cluster"]["redis"] == "down"
            metrics = await (await http.get(f"{a.http}/metrics")).text()
            r = await http.delete(f"{a.http}/api/v1/calls/elsewhere")  # may be on another
            assert r.status == 503 and (await r.json())["code"] == "cluster_unavailable"
        assert "voicebot_cluster_redis_up 0" in metrics
        assert "voicebot_cluster_degraded_admissions_total 2" in metrics
        assert any("Redis lost" in r.message for r in caplog.records)
        assert any("local limits only" in r.message for r in caplog.records)
        await third.close()
        await until(lambda: len(a.runtime.calls) == 2)

        await redis.start()  # same port, empty: the live calls must be counted again
        await until(lambda: cluster.up)
        client = Redis.from_url(redis.url)
        assert await client.zcard("voicebot:slots") == 2
        ws_refused = await connect_or_code(a)
        assert ws_refused == 1013  # fleet-wide max_calls applies again
        await say(second, "book a table", "For how many people?")
        await client.aclose()
        await first.close()
        await second.close()


async def connect_or_code(server) -> int | None:
    from .test_cluster import try_connect

    got = await try_connect(server)
    if isinstance(got, int):
        return got
    await got.close()
    return None


async def test_a_dead_instances_slots_are_reclaimed_within_the_ttl(tmp_path):
    async with redis_server(tmp_path) as redis:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        cfg = {"max_calls": 2, "heartbeat_s": 0.1, "slot_ttl_s": 0.5}
        async with (
            serve(tmp_path / "a", cluster_config(redis.url, "a", **cfg)) as a,
            serve(tmp_path / "b", cluster_config(redis.url, "b", **cfg)) as b,
        ):
            ca, cb = a.runtime.cluster, b.runtime.cluster
            assert await ca.admit("a-1", None) is None
            assert await ca.admit("a-2", None) is None
            beats = ca.beats
            await until(lambda: ca.beats >= beats + 8)  # > 1.5 ttl of heartbeats
            assert await cb.admit("b-1", None) == "the fleet is at capacity (2 calls)"
            for task in ca._tasks:  # the instance dies: no heartbeat, no goodbye
                task.cancel()
            died = time.monotonic()

            async def admitted() -> bool:
                return await cb.admit("b-1", None) is None

            await until(admitted, timeout=5)
            assert time.monotonic() - died <= 0.5 + 0.1 + 0.5  # ttl + a heartbeat + slack


def test_cluster_settings_are_checked_with_file_line_and_key(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "cluster:\n"
        "  redis_url: http://cache:6379\n"
        "  heartbeat_s: 5\n"
        "  slot_ttl_s: 2\n"
        "  pool_size: 0\n"
        "  instanceid: x\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    text = str(caught.value)
    assert f"{path}:2: cluster.redis_url: must start with redis://" in text
    assert f"{path}:4: cluster.slot_ttl_s: must be longer than cluster.heartbeat_s" in text
    assert f"{path}:5: cluster.pool_size: 0 is out of range" in text
    assert f"{path}:6: cluster.instanceid: unknown key (did you mean 'instance_id'?)" in text


async def test_phone_media_stream_is_pinned_to_the_instance_that_answered(tmp_path):
    token = "twilio-auth-token"
    async with redis_server(tmp_path) as redis:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        own = f"http://127.0.0.1:{free_port()}/i/a"  # a proxy routes /i/a/… to instance a
        cfg_a = cluster_config(redis.url, "a", max_calls=1, instance_url=own)
        cfg_b = cluster_config(redis.url, "b", max_calls=1)
        for cfg in (cfg_a, cfg_b):
            cfg["telephony"] = {"twilio": {"auth_token": token}}
        async with serve(tmp_path / "a", cfg_a) as a, serve(tmp_path / "b", cfg_b) as b:
            form = {"CallSid": "CA42", "From": "+15550001111", "To": "+15550002222"}
            status, doc = await answer(a, form, token)
            assert status == 200, doc
            url, params = stream_of(doc)
            assert url == own.replace("http:", "ws:") + "/twilio/media"
            status, busy = await answer(b, {**form, "CallSid": "CA43"}, token)
            assert "<Reject" in busy  # the fleet's one slot is held for CA42 already
            signed = {"X-Twilio-Signature": twilio_sign(token, url)}
            # the stream arriving at another instance is refused there (no slot, no token)
            with pytest.raises(websockets.InvalidStatus):
                await Phone.dial(f"{b.url}/twilio/media", signed, call_sid="CA42")
            # through the proxy: the path it strips is part of what Twilio signed
            phone = await Phone.dial(f"{a.url}/twilio/media", signed, call_sid="CA42")
            phone.parameters = params
            await phone.connected()
            await phone.start()
            await until(lambda: len(a.runtime.calls) == 1)
            client = Redis.from_url(redis.url)
            assert await client.zrange("voicebot:slots", 0, -1) == [b"twilio:CA42"]
            await client.aclose()
            await phone.stop()
            await until(lambda: not a.runtime.calls)


async def test_phone_transfer_requested_on_another_instance(tmp_path, fake_twilio):  # noqa: F811
    api, requests = fake_twilio
    async with redis_server(tmp_path) as redis:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        cfg_a = {**transfer_config(api), "cluster": cluster_config(redis.url, "a")["cluster"]}
        cfg_b = {**transfer_config(api), "cluster": cluster_config(redis.url, "b")["cluster"]}
        async with serve(tmp_path / "a", cfg_a) as a, serve(tmp_path / "b", cfg_b) as b:
            phone = await live_call(a)
            (call_id,) = a.runtime.calls
            await until(lambda: b.runtime.cluster.owner_of(call_id))  # listed by a's start

            async with aiohttp.ClientSession() as http:
                r = await http.post(
                    f"{b.http}/api/v1/calls/{call_id}/transfer", json={"target": "+15551234567"}
                )
                assert r.status == 200, await r.text()
                assert await r.json() == {"call_id": call_id, "instance": "a", "transfer": "done"}
            (req,) = requests
            assert req.path.endswith("/Calls/CA0001.json") and "+15551234567" in req.get("Twiml")
            await phone.stop()
            await until(lambda: not a.runtime.calls)
