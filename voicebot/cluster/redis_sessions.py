"""Sessions in Redis, so a client that reconnects to any instance resumes where it was.

A session is two keys: what `POST /api/v1/sessions` made (namespace, flow, subject, expiry) and
its call's state, rewritten at every turn boundary (the flow's node, slots, variables, history:
`Call.snapshot()`). Both are bounded (`cluster.max_session_bytes`) and encrypted with the storage
key when `storage.encrypt_key` is set. Audio never goes to Redis.

Writes leave the call's path: a turn boundary puts the state in an outbox (one entry per key,
the latest wins, so it is bounded by the live calls) that one task writes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from cryptography.fernet import InvalidToken
from redis.exceptions import RedisError

from ..records.storage import cipher
from .state import TAKEN_OVER

log = logging.getLogger("voicebot.cluster")

Op = Callable[[Any], None]  # adds its commands to a pipeline
#: Errors that mean "Redis is not there now", as opposed to a bug of ours.
LOST = (RedisError, OSError, TimeoutError)


def still_running() -> None:
    """redis-py turns a cancellation inside a command into a connection error: a task stopped
    mid-command must still stop, not take it for an outage and go round again."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class SessionSync:
    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        cfg = cluster.runtime.config
        self.prefix = cfg.cluster.key_prefix + "session:"
        self.ttl_ms = int(cfg.security.sessions.ttl_s * 1000)
        self.max_bytes = cfg.cluster.max_session_bytes
        self.fernet = cipher(cfg.storage) if cfg.storage.encrypt_key else None
        self._pending: dict[str, Op] = {}
        self._in_flight = 0
        self._wake = asyncio.Event()
        #: how long each outbox write took (ms), for benchmarks/cluster.py
        self.write_ms: deque[float] = deque(maxlen=1000)

    # ------------------------------------------------------------------------------- codec

    def encode(self, value: dict[str, Any]) -> bytes:
        data = json.dumps(value, default=str, separators=(",", ":")).encode()
        return self.fernet.encrypt(data) if self.fernet is not None else data

    def decode(self, blob: bytes) -> dict[str, Any]:
        data = self.fernet.decrypt(blob) if self.fernet is not None else blob
        return json.loads(data)

    def bounded(self, snapshot: dict[str, Any] | None) -> dict[str, Any] | None:
        """The snapshot within `max_session_bytes`: oldest history first to go, then all of it."""
        if snapshot is None:
            return None
        snapshot = dict(snapshot)
        history = list(snapshot.get("history", []))
        while len(json.dumps(snapshot, default=str)) > self.max_bytes:
            if not history:
                log.warning("cluster: session state over cluster.max_session_bytes; not shared")
                return None
            history = history[len(history) // 2 + 1 :]
            snapshot["history"] = history
        return snapshot

    # ------------------------------------------------------------------------------ outbox

    @property
    def idle(self) -> bool:
        """Nothing queued or being written (for tests and a clean stop)."""
        return not self._pending and not self._in_flight

    def put(self, key: str, op: Op) -> None:
        self._pending[key] = op
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.cluster.up:
                await self.flush()
            still_running()

    async def flush(self) -> None:
        while self._pending and self.cluster.up:
            batch, self._pending = self._pending, {}
            self._in_flight = len(batch)
            pipe = self.cluster.redis.pipeline(transaction=False)
            for op in batch.values():
                op(pipe)
            started = time.perf_counter()
            try:
                await pipe.execute()
            except LOST as exc:
                still_running()
                self.cluster.lost(exc)
                self._pending = {**batch, **self._pending}  # newer entries win
                return
            finally:
                self._in_flight = 0
            self.write_ms.append((time.perf_counter() - started) * 1000)

    # ---------------------------------------------------------------------------- sessions

    async def created(self, session: Any) -> None:
        if not self.cluster.up:
            return  # known here only; it resumes here only
        meta = {
            "namespace": session.namespace,
            "flow": session.flow,
            "subject": session.subject,
            "expires_at": session.expires_at,
        }
        px = max(1, math.ceil((session.expires_at - time.time()) * 1000))
        try:
            await self.cluster.redis.set(self.prefix + session.id, self.encode(meta), px=px)
        except LOST as exc:
            self.cluster.lost(exc)

    def save(self, call: Any, *, live: bool) -> None:
        """A turn boundary (live) or the call's end: the state another instance resumes from."""
        if not live and call.end_reason == TAKEN_OVER:
            return  # the instance that took the session over writes from now on
        snapshot = call.snapshot() if live or not call.clean_end else None
        state = {
            "snapshot": self.bounded(snapshot),
            "live_on": self.cluster.instance_id if live else None,
            "live_call": call.id if live else None,
            "dropped_at": 0.0 if live else time.time(),
            "consumed": True,
        }
        blob, key, ttl = self.encode(state), self.prefix + call.session_id + ":state", self.ttl_ms
        self.put(key, lambda pipe: pipe.set(key, blob, px=ttl))

    async def fetch(self, store: Any, session_id: str) -> Any:
        """The session as the fleet knows it, adopted into this instance's store (or None).

        When its call still runs on another instance (the client moved before that instance
        noticed), that instance hands the state over and ends its side."""
        if not self.cluster.up:
            return store.get(session_id)
        key = self.prefix + session_id
        try:
            meta_blob, state_blob = await self.cluster.redis.mget(key, key + ":state")
        except LOST as exc:
            self.cluster.lost(exc)
            return store.get(session_id)
        if meta_blob is None:
            return store.get(session_id)  # made while Redis was away: known here only
        try:
            meta = self.decode(meta_blob)
            state = self.decode(state_blob) if state_blob else {}
        except (InvalidToken, ValueError):
            log.warning(
                "cluster: session %s… in Redis cannot be read here: do all instances have the "
                "same storage.encrypt_key?",
                session_id[:8],
            )
            return store.get(session_id)
        if meta["expires_at"] < time.time():
            return None
        owner = state.get("live_on")
        if owner == self.cluster.instance_id:
            return store.get(session_id)  # its call runs here: the local take-over applies
        session = store.adopt(
            session_id,
            expires_at=meta["expires_at"],
            namespace=meta.get("namespace") or "",
            flow=meta.get("flow"),
            subject=meta.get("subject"),
        )
        if session is None or session.active_call is not None:
            return session
        snapshot, dropped_at = state.get("snapshot"), state.get("dropped_at") or 0.0
        if owner:
            try:
                answer = await self.cluster.ask(owner, state.get("live_call"), "takeover", {})
            except (TimeoutError, *LOST):
                answer = None  # its instance died: the last turn boundary is what there is
            if answer and answer.get("snapshot") is not None:
                snapshot = self.bounded(answer["snapshot"])
            dropped_at = time.time()
        session.snapshot, session.dropped_at = snapshot, dropped_at
        session.consumed = bool(state.get("consumed"))
        return store.get(session_id)
