"""Short-lived values a carrier shares between a call and a later webhook about the same call.

Exotel is the case in point: a transfer cannot be ordered through an API, so the call records
its target and ends its stream, and the flow's next applet asks a webhook for the number. That
webhook may reach another instance than the one that ran the call, so behind a load balancer
(`cluster.redis_url`) the values live in Redis (`voicebot.cluster.redis_values`); on a single
instance they live here, in the process. Either way every value expires, and the in-process
store holds a bounded number of them (the oldest go first).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol

#: The longest value kept (a transfer target is tens of bytes).
MAX_VALUE_CHARS = 1024


class SharedValues(Protocol):
    """What carriers get: `put` raises `TelephonyError` when the store is unreachable."""

    async def put(self, key: str, value: str, ttl_s: float) -> None: ...

    async def get(self, key: str) -> str | None: ...


class LocalValues:
    """The single instance's store: a bounded dict of (expiry, value), oldest evicted first."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, tuple[float, str]] = OrderedDict()

    async def put(self, key: str, value: str, ttl_s: float) -> None:
        if len(value) > MAX_VALUE_CHARS:
            raise ValueError(f"a shared value is at most {MAX_VALUE_CHARS} characters")
        self._items.pop(key, None)
        self._items[key] = (time.monotonic() + ttl_s, value)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    async def get(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= time.monotonic():
            del self._items[key]
            return None
        return item[1]
