"""Instances that share state: call slots, sessions, the calls list and call commands.

`make_cluster` picks the in-process state (no `cluster.redis_url`: today's single instance) or
the Redis one. Importing this package imports nothing else (`voicebot.config` reads its config
module), and nothing imports `redis` unless a URL is configured.
"""

from __future__ import annotations

from typing import Any


def make_cluster(runtime: Any) -> Any:
    """A `ClusterState` for `runtime.config.cluster`."""
    if not runtime.config.cluster.redis_url:
        from .state import LocalCluster

        return LocalCluster(runtime)
    from .redis_state import RedisCluster

    return RedisCluster(runtime)


def make_outbound_store(cluster: Any) -> Any:
    """The `OutboundStore` of outbound call records: in Redis when the fleet shares one, else in
    this process."""
    if cluster.mode != "redis":
        from ..telephony.outbound import OutboundCalls

        return OutboundCalls()
    from .outbound import RedisOutboundCalls

    return RedisOutboundCalls(cluster)


def make_shared_tokens(cluster: Any, capacity: int) -> Any:
    """Where the fleet keeps phone stream tokens: Redis when the fleet shares one, else None
    (each process keeps its own)."""
    if cluster.mode != "redis":
        return None
    from .stream_tokens import RedisStreamTokens

    return RedisStreamTokens(cluster, capacity)
