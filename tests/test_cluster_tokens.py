"""Phone stream tokens shared by two instances through one real Redis: Twilio's voice webhook
reaches instance A and its media stream instance B (a load balancer does not keep them
together), and the call starts on B with what A's webhook vouched for; the token then works
nowhere again. With Redis gone, a token minted stays on its instance and still works there."""

from __future__ import annotations

import contextlib
import logging

from voicebot.server.telephony import TELEPHONY

from .redis_support import needs_redis, redis_server
from .support import serve
from .twilio_e2e_support import assert_nothing_left, record
from .twilio_phone import CALLER, Phone, answer, phone_config, stream_of

pytestmark = needs_redis


@contextlib.asynccontextmanager
async def fleet(tmp_path):
    async with redis_server(tmp_path) as redis:
        servers = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            cfg = phone_config()
            cfg["cluster"] = {
                "redis_url": redis.url,
                "instance_id": name,
                "heartbeat_s": 0.2,
                "slot_ttl_s": 1.0,
            }
            servers.append(serve(tmp_path / name, cfg))
        async with servers[0] as a, servers[1] as b:
            yield redis, a, b


async def stream(server, call_sid: str, parameters: dict[str, str]) -> Phone:
    phone = await Phone.dial(f"{server.url}/twilio/media", call_sid=call_sid)
    phone.parameters = parameters  # the token exactly as the TwiML said
    await phone.connected()
    await phone.start()
    return phone


async def test_webhook_on_a_stream_on_b(tmp_path):
    async with fleet(tmp_path) as (_, a, b):
        rec_a, rec_b = record(a), record(b)
        form = {**CALLER, "CallSid": "CA0001", "AnsweredBy": "human"}
        status, doc = await answer(a, form)
        assert status == 200, doc
        _, parameters = stream_of(doc)

        phone = await stream(b, "CA0001", parameters)
        await phone.wait(lambda: phone.media)  # B's greeting: the call started there
        (started,) = rec_b.calls
        # `answered_by` is not among the stream's parameters: only A's webhook knew it
        assert started.variables["answered_by"] == "human"
        assert started.variables["From"] == CALLER["From"]
        assert (
            len(a.runner.app[TELEPHONY].tokens.local) == 0
        )  # the token went to Redis, not A's memory

        for server in (a, b):  # used: refused on either instance
            replay = await stream(server, "CA0001", parameters)
            assert await replay.wait_closed() == 1008
            assert replay.ws.close_reason == "stream token missing, used or expired"
        assert rec_a.calls == [] and len(rec_b.calls) == 1

        _, doc = await answer(a, {**CALLER, "CallSid": "CA-other"})
        other = await stream(b, "CA-mine", stream_of(doc)[1])  # minted for another call
        assert await other.wait_closed() == 1008

        await phone.stop()
        await phone.wait_closed()
        await assert_nothing_left(b)


async def test_redis_lost_keeps_the_token_on_its_instance(tmp_path, caplog):
    async with fleet(tmp_path) as (redis, a, b):
        rec_a = record(a)
        await redis.stop()
        with caplog.at_level(logging.WARNING):
            status, doc = await answer(a, {**CALLER, "CallSid": "CA0002"})
        assert status == 200, doc
        assert any("stream token kept in this process" in r.getMessage() for r in caplog.records)
        _, parameters = stream_of(doc)

        elsewhere = await stream(b, "CA0002", parameters)  # B cannot know it
        assert await elsewhere.wait_closed() == 1008
        phone = await stream(a, "CA0002", parameters)
        await phone.wait(lambda: phone.media)
        assert len(rec_a.calls) == 1
        await phone.stop()
        await phone.wait_closed()


async def test_tokens_in_redis_expire_with_the_token_and_are_bounded(tmp_path):
    async with fleet(tmp_path) as (_, a, b):
        shared = a.runner.app[TELEPHONY].tokens.shared
        shared.capacity = 3
        minted = []
        for n in range(5):
            _, doc = await answer(a, {**CALLER, "CallSid": f"CA1{n}"})
            minted.append(stream_of(doc)[1])
        keys = sorted(await shared.redis.keys(shared.prefix + "*"))
        assert len(keys) == 3 == await shared.redis.zcard(shared.k_index)
        for key in keys:
            assert 0 < await shared.redis.pttl(key) <= 30_000
        oldest = await stream(b, "CA10", minted[0])  # forgotten past the capacity
        assert await oldest.wait_closed() == 1008
        phone = await stream(b, "CA14", minted[4])
        await phone.wait(lambda: phone.media)
        assert await shared.redis.zcard(shared.k_index) == 2  # taken: gone from the index too
        await phone.stop()
        await phone.wait_closed()
