"""The fleet's shared values (`voicebot.telephony.values`) in Redis: one key each, under
`{key_prefix}values:`, with Redis's own expiry, so any instance reads what another wrote."""

from __future__ import annotations

from typing import Any

from ..telephony.serializer import TelephonyError
from ..telephony.values import MAX_VALUE_CHARS
from .redis_sessions import LOST, still_running


class RedisValues:
    def __init__(self, cluster: Any) -> None:
        self._cluster = cluster
        self.prefix = cluster.config.key_prefix + "values:"

    async def put(self, key: str, value: str, ttl_s: float) -> None:
        if len(value) > MAX_VALUE_CHARS:
            raise ValueError(f"a shared value is at most {MAX_VALUE_CHARS} characters")
        try:
            await self._cluster.redis.set(self.prefix + key, value, px=max(1, int(ttl_s * 1000)))
        except LOST as exc:
            still_running()
            self._cluster.lost(exc)
            raise TelephonyError(f"the cluster's Redis is unreachable: {exc}") from exc

    async def get(self, key: str) -> str | None:
        try:
            value = await self._cluster.redis.get(self.prefix + key)
        except LOST as exc:
            still_running()
            self._cluster.lost(exc)
            raise TelephonyError(f"the cluster's Redis is unreachable: {exc}") from exc
        return value.decode() if isinstance(value, bytes) else value
