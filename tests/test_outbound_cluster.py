"""Outbound call records shared by two instances through one real Redis: a call placed on A (the
`twilio` SDK against a fake of Twilio's REST API), its status callbacks and its answer on B, and
A's `GET /api/v1/calls/{id}` sees it all; an unanswered call reaches `call_ended` exactly once in
the fleet, however many instances its callbacks reach."""

from __future__ import annotations

import contextlib
import json

from voicebot.server.telephony import TELEPHONY
from voicebot.telephony.outbound import OutboundCall

from .redis_support import needs_redis, redis_server, until
from .support import serve
from .test_outbound_calls import PUBLIC, SID, TOKEN, api, config, twilio_posts
from .twilio_e2e_support import record
from .twilio_phone import Phone, stream_of, twilio_sign
from .twilio_rest_fake import fake_twilio_rest

pytestmark = needs_redis


@contextlib.asynccontextmanager
async def fleet(tmp_path, **cluster):
    async with redis_server(tmp_path) as redis, fake_twilio_rest(SID, TOKEN) as rest:
        servers = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            cfg = config(tmp_path / name, rest.url)
            cfg["cluster"] = {
                "redis_url": redis.url,
                "instance_id": name,
                "heartbeat_s": 0.2,
                "slot_ttl_s": 1.0,
                **cluster,
            }
            servers.append(serve(tmp_path / name, cfg))
        async with servers[0] as a, servers[1] as b:
            yield redis, rest, a, b


async def place(server, to: str, **body) -> dict:
    status, call = await api(
        server, "POST", "/api/v1/calls", {"to": to, "from": "+15557654321", **body}
    )
    assert status == 201, call
    return call


async def test_placed_on_a_answered_and_reported_on_b(tmp_path):
    async with fleet(tmp_path) as (_, rest, a, b):
        rec_a, rec_b = record(a), record(b)
        call = await place(a, "+15551234567", flow="reminder", variables={"name": "Ada"})
        sid = call["id"]
        assert rest.requests[0].get("To") == "+15551234567"
        progress = {"CallSid": sid, "AccountSid": SID, "Direction": "outbound-api"}

        assert (await twilio_posts(b, "/twilio/status", {**progress, "CallStatus": "ringing"}))[
            0
        ] == 204
        assert (await api(a, "GET", f"/api/v1/calls/{sid}"))[1]["status"] == "ringing"

        # the callee answers: Twilio's voice webhook and then its media stream both reach B
        answer = {**progress, "From": "+15557654321", "To": "+15551234567"}
        status, doc = await twilio_posts(
            b, "/twilio/voice", {**answer, "CallStatus": "in-progress"}
        )
        assert status == 200, doc
        _, parameters = stream_of(doc)
        await twilio_posts(b, "/twilio/status", {**progress, "CallStatus": "in-progress"})
        signature = twilio_sign(TOKEN, PUBLIC.replace("https", "wss") + "/twilio/media")
        phone = await Phone.dial(
            f"{b.url}/twilio/media", {"X-Twilio-Signature": signature}, call_sid=sid
        )
        phone.parameters = parameters
        await phone.connected()
        await phone.start()
        await rec_b.wait(lambda: rec_b.ended)
        (started,) = rec_b.calls
        assert started.variables["name"] == "Ada"
        assert started.variables["direction"] == "outbound"
        assert rec_b.spoken[0][0] == "Hi Ada, this is your reminder."  # the `reminder` flow
        assert rec_a.calls == []

        await twilio_posts(
            b, "/twilio/status", {**progress, "CallStatus": "completed", "CallDuration": "12"}
        )
        status, got = await api(a, "GET", f"/api/v1/calls/{sid}")
        assert status == 200
        assert (got["status"], got["outcome"], got["duration_s"]) == ("completed", "answered", 12)
        assert got["answered_at"] <= got["ended_at"]
        assert (got["flow"], got["variables"]) == ("reminder", {"name": "Ada"})
        assert (await api(b, "GET", f"/api/v1/calls/{sid}"))[1] == got


async def test_an_unanswered_call_ends_once_in_the_fleet(tmp_path):
    async with fleet(tmp_path) as (_, _rest, a, b):
        rec_a, rec_b = record(a), record(b)
        sid = (await place(b, "+15551234568"))["id"]
        busy = {"CallSid": sid, "AccountSid": SID, "CallStatus": "busy"}
        # every hook took the record (the audit trail, metrics, the cluster's own)
        assert (await twilio_posts(a, "/twilio/status", busy))[0] == 204
        assert rec_a.ended == ["busy"]
        # Twilio retried it, to the other instance; then a late `ringing`
        assert (await twilio_posts(b, "/twilio/status", busy))[0] == 204
        late = {**busy, "CallStatus": "ringing"}
        assert (await twilio_posts(a, "/twilio/status", late))[0] == 204
        assert rec_a.ended == ["busy"] and rec_b.ended == []
        for server in (a, b):
            _, got = await api(server, "GET", f"/api/v1/calls/{sid}")
            assert (got["status"], got["outcome"], got["duration_s"]) == ("busy", "busy", 0.0)


async def test_records_expire_and_are_bounded(tmp_path):
    async with fleet(tmp_path, max_outbound_calls=100) as (_redis, _rest, a, _b):
        outbound = a.runner.app[TELEPHONY].outbound
        r = a.runtime.cluster.redis
        for i in range(105):
            call = OutboundCall(f"CAx{i:03}", "twilio", "+15551234567", "+15557654321")
            await outbound.add(call)
            if i in (3, 7):  # two finished early: they go first
                await outbound.progress(call.id, "busy")
        assert await r.zcard(outbound.k_index) == 100
        assert await r.get(outbound.prefix + "CAx003") is None
        assert await r.get(outbound.prefix + "CAx007") is None
        assert await r.get(outbound.prefix + "CAx000") is None  # then the oldest of all
        assert await outbound.get("CAx104") is not None
        ttl = await r.pttl(outbound.prefix + "CAx104")
        assert 86_000_000 < ttl <= 86_400_000
        record_json = json.loads(await r.get(outbound.prefix + "CAx104"))
        assert record_json["to"] == "+15551234567"


async def test_redis_lost_keeps_records_on_the_instance(tmp_path):
    async with fleet(tmp_path) as (redis, _rest, a, _b):
        await redis.stop()
        sid = (await place(a, "+15551234569"))["id"]  # placed while Redis is down
        await until(lambda: not a.runtime.cluster.up)
        await twilio_posts(a, "/twilio/status", {"CallSid": sid, "CallStatus": "no-answer"})
        status, got = await api(a, "GET", f"/api/v1/calls/{sid}")
        assert status == 200 and got["outcome"] == "no-answer"
