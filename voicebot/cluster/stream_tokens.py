"""Stream tokens shared by the fleet through Redis (`cluster.redis_url`): a carrier's answer
webhook may reach one instance (or `--workers` worker) and its media stream another.

A token `id.secret` is stored under `{prefix}stoken:{id}.{sha256(secret)}`, so a lookup never
compares the secret itself (nothing in its timing depends on it) and a wrong secret cannot
consume someone else's token. The value (bound call id and variables, JSON) expires with the
token's TTL; `{prefix}stokens` indexes pending tokens by expiry, and past the capacity the one
closest to expiry is dropped, so the set stays bounded however fast webhooks come. Taking is
one script run: of two instances taking the same token at once, exactly one gets it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from .redis_sessions import LOST, still_running
from .state import log

#: KEYS: token key, index; ARGV: value, ttl_ms, capacity, key prefix, member
#: Index scores are Redis's own clock (`TIME`), so instances' clocks never matter.
PUT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl, capacity = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[5])
local over = redis.call('ZCARD', KEYS[2]) - capacity
if over > 0 then
  for i, victim in ipairs(redis.call('ZPOPMIN', KEYS[2], over)) do
    if i % 2 == 1 then redis.call('DEL', ARGV[4] .. victim) end
  end
end
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
"""

#: KEYS: token key, index; ARGV: member → the value, or nil (unknown, taken, expired)
TAKE = """
local value = redis.call('GET', KEYS[1])
if value then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return value
"""


class RedisStreamTokens:
    """The `SharedTokens` of a fleet; `cluster` is the instance's `RedisCluster`."""

    def __init__(self, cluster: Any, capacity: int) -> None:
        self.cluster = cluster
        self.prefix = cluster.config.key_prefix + "stoken:"
        self.k_index = cluster.config.key_prefix + "stokens"
        self.capacity = capacity
        self._put = cluster.redis.register_script(PUT)
        self._take = cluster.redis.register_script(TAKE)

    @property
    def redis(self) -> Any:
        return self.cluster.redis

    @staticmethod
    def member(token: str) -> str:
        key, _, secret = token.partition(".")
        return f"{key}.{hashlib.sha256(secret.encode('utf-8', 'replace')).hexdigest()}"

    async def put(
        self, token: str, left_s: float, call_id: str, variables: Mapping[str, str]
    ) -> bool:
        """Store a token for `left_s`; False if Redis is unreachable (or known lost)."""
        if not self.cluster.up:
            return False
        member = self.member(token)
        value = json.dumps({"call_id": call_id, "variables": dict(variables)})
        try:
            await self._put(
                keys=[self.prefix + member, self.k_index],
                args=[value, max(1, int(left_s * 1000)), self.capacity, self.prefix, member],
            )
        except LOST as exc:
            still_running()
            self.cluster.lost(exc)
            return False
        return True

    async def take(self, token: str) -> tuple[str, dict[str, str]] | None:
        """(bound call id, variables) of a pending token, consuming it; None if unknown, taken,
        expired, or Redis is unreachable (tokens minted meanwhile stayed where they were)."""
        if not self.cluster.up:
            return None
        member = self.member(token)
        try:
            value = await self._take(keys=[self.prefix + member, self.k_index], args=[member])
        except LOST as exc:
            still_running()
            self.cluster.lost(exc)
            return None
        if value is None:
            return None
        try:
            entry = json.loads(value)
            return str(entry["call_id"]), {str(k): str(v) for k, v in entry["variables"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("cluster: a stream token in Redis was not readable; refused")
            return None
