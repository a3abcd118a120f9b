"""Outbound call records shared by the fleet through Redis (`cluster.redis_url`).

A carrier's status webhook and the callee's answer may reach any instance (or `--workers`
worker), not the one that placed the call: every instance reads and updates the same record, so
`GET /api/v1/calls/{id}` answers the same everywhere, the answer webhook starts the requested flow
with its variables wherever it lands, and an unanswered call reaches the `call_ended` hook once.

Each record is one JSON string under `{prefix}outcall:{id}` that expires `cluster.outbound_ttl_s`
after the call was placed; `{prefix}outcalls` indexes them by age and `{prefix}outcalls:done`
lists the finished ones, so that past `cluster.max_outbound_calls` the oldest finished record is
evicted first (then the oldest of all). A status callback is applied under `WATCH` (optimistic
locking): two callbacks of one call on two instances at once cannot lose either.

Redis lost: the record is kept in this instance's bounded in-process store instead, and read
back from there, until Redis is back (the cluster's heartbeat notices).
"""

from __future__ import annotations

import json
import time
from typing import Any

from redis.exceptions import WatchError

from ..telephony.outbound import FINAL, OutboundCall, OutboundCalls, advance
from .redis_sessions import LOST
from .state import log

#: How often one status callback is retried when another instance changed the record meanwhile.
MAX_WATCH_RETRIES = 8

#: KEYS: record, index, finished
#: ARGV: record JSON, ttl_ms, id, capacity, record key prefix
#: Index scores are Redis's own clock (`TIME`), so instances' clocks never matter.
ADD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl, id, capacity = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - ttl)
redis.call('ZADD', KEYS[2], now, id)
local over = redis.call('ZCARD', KEYS[2]) - capacity
while over > 0 do
  local victim = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  if not victim then victim = redis.call('ZRANGE', KEYS[2], 0, 0)[1] end
  redis.call('ZREM', KEYS[2], victim)
  redis.call('ZREM', KEYS[3], victim)
  redis.call('DEL', ARGV[5] .. victim)
  over = over - 1
end
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return 1
"""


class RedisOutboundCalls:
    """The `OutboundStore` of a fleet; `cluster` is the instance's `RedisCluster`."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        cfg = cluster.config
        self.prefix = cfg.key_prefix + "outcall:"
        self.k_index = cfg.key_prefix + "outcalls"
        self.k_done = cfg.key_prefix + "outcalls:done"
        self.ttl_ms = int(cfg.outbound_ttl_s * 1000)
        self.capacity = cfg.max_outbound_calls
        self._add = cluster.redis.register_script(ADD)
        #: while Redis is lost: records placed or updated here meanwhile
        self.local = OutboundCalls()

    @property
    def redis(self) -> Any:
        return self.cluster.redis

    async def add(self, call: OutboundCall) -> None:
        if self.cluster.up:
            try:
                await self._add(
                    keys=[self.prefix + call.id, self.k_index, self.k_done],
                    args=[
                        json.dumps(call.record()),
                        self.ttl_ms,
                        call.id,
                        self.capacity,
                        self.prefix,  # the evicted records' keys are built in the script
                    ],
                )
                return
            except LOST as exc:
                self.cluster.lost(exc)
        self.local.put(call)

    async def get(self, call_id: str) -> OutboundCall | None:
        if self.cluster.up:
            try:
                raw = await self.redis.get(self.prefix + call_id)
            except LOST as exc:
                self.cluster.lost(exc)
            else:
                if raw is not None:
                    return OutboundCall.from_record(json.loads(raw))
        return await self.local.get(call_id)

    async def progress(
        self, call_id: str, carrier_status: str, duration_s: float | None = None
    ) -> tuple[OutboundCall | None, bool]:
        if self.cluster.up and await self.local.get(call_id) is None:
            try:
                found = await self._progress(call_id, carrier_status, duration_s)
            except LOST as exc:
                self.cluster.lost(exc)
            else:
                if found[0] is not None:
                    return found
        return await self.local.progress(call_id, carrier_status, duration_s)

    async def _progress(
        self, call_id: str, carrier_status: str, duration_s: float | None
    ) -> tuple[OutboundCall | None, bool]:
        key = self.prefix + call_id
        call = None
        for _ in range(MAX_WATCH_RETRIES):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        return None, False
                    call = OutboundCall.from_record(json.loads(raw))
                    changed, ended = advance(call, carrier_status, duration_s, time.time())
                    if not changed:
                        return call, False
                    pipe.multi()
                    pipe.set(key, json.dumps(call.record()), keepttl=True)
                    if call.status in FINAL:
                        pipe.zadd(self.k_done, {call_id: int(time.time() * 1000)})
                    await pipe.execute()
                    return call, ended
                except WatchError:
                    continue  # another instance updated it first: apply ours to theirs
        log.warning(
            "outbound call %s: status %r dropped, its record kept changing", call_id, carrier_status
        )
        return call, False
