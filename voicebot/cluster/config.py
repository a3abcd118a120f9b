"""The `cluster:` section: how instances behind one load balancer share state in Redis.

Unset `redis_url` (the default) keeps everything in this process, exactly as a single instance
has always run; nothing here is read then except the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ClusterConfig:
    #: `redis://host:6379/0` (or `rediss://` for TLS). Empty: no cluster, state stays in-process.
    redis_url: str = ""
    #: This instance's name in the fleet (calls list, hang-up routing); empty: host name + pid.
    instance_id: str = ""
    #: This instance's own public base URL, for phone media streams that must come back to the
    #: instance that answered (`https://vb-0.voice.example.com`, or a routing path a proxy
    #: understands: `https://voice.example.com/i/vb-0`). Empty: `server.public_url`.
    instance_url: str = ""
    #: Prefix of every Redis key and channel, so several fleets can share one Redis.
    key_prefix: str = "voicebot:"
    #: Connections in this instance's pool.
    pool_size: int = field(default=20, metadata={"min": 1, "max": 10_000})
    #: How long one Redis command may take before the instance treats Redis as lost.
    command_timeout_s: float = field(default=0.5, metadata={"min": 0.01, "max": 30})
    connect_timeout_s: float = field(default=2.0, metadata={"min": 0.01, "max": 60})
    #: Calls across the whole fleet (each instance also keeps `security.limits.max_calls`).
    max_calls: int = field(default=10_000, metadata={"min": 1})
    #: New calls per subject per minute across the fleet (0: no rate limit).
    calls_per_subject_per_minute: int = field(default=0, metadata={"min": 0})
    #: How often an instance refreshes its live call slots.
    heartbeat_s: float = field(default=5.0, metadata={"min": 0.05, "max": 300})
    #: A slot not refreshed for this long is reclaimed: a crashed instance's calls stop counting
    #: within `slot_ttl_s` (+ one heartbeat). Must exceed `heartbeat_s`.
    slot_ttl_s: float = field(default=20.0, metadata={"min": 0.1, "max": 3600})
    #: The largest flow state one session may keep in Redis (bytes of JSON, before encryption).
    max_session_bytes: int = field(default=64 * 1024, metadata={"min": 1024, "max": 16 << 20})
    #: How long an outbound call's record (`POST /api/v1/calls`) stays in Redis after it was
    #: placed: longer than a call lasts, and long enough for a dialer to read its outcome.
    outbound_ttl_s: float = field(default=86_400.0, metadata={"min": 60, "max": 30 * 86_400})
    #: The most outbound call records Redis keeps; past it the oldest finished go first.
    max_outbound_calls: int = field(default=100_000, metadata={"min": 100, "max": 10_000_000})


def problems_of(cfg: ClusterConfig) -> list[tuple[str, str]]:
    """(key, message) for settings that parse but cannot work together."""
    out: list[tuple[str, str]] = []
    if not cfg.redis_url:
        return out
    if not cfg.redis_url.startswith(("redis://", "rediss://", "unix://")):
        out.append(("cluster.redis_url", "must start with redis://, rediss:// or unix://"))
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        out.append(
            ("cluster.redis_url", "needs the redis client: pip install 'voicebot-runtime[cluster]'")
        )
    if cfg.slot_ttl_s <= cfg.heartbeat_s:
        out.append(
            (
                "cluster.slot_ttl_s",
                f"must be longer than cluster.heartbeat_s ({cfg.heartbeat_s:g}); "
                "3-4 heartbeats is usual",
            )
        )
    if cfg.instance_url and not cfg.instance_url.startswith(("http://", "https://")):
        out.append(("cluster.instance_url", "must start with http:// or https://"))
    return out
