"""Instances cooperating through Redis (`cluster.redis_url`): fleet-wide call slots, the fleet's
calls list, call commands over pub/sub, and sessions that resume on any instance.

Redis is never on a call's audio path. Losing it mid-run degrades, it does not stop: calls in
progress go on, new calls are admitted on this instance's own limits (a warning in the log, a
count in /metrics), and the heartbeat reconnects and re-registers the live calls when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ..hookspecs import hookimpl
from . import scripts
from .redis_sessions import LOST, SessionSync, still_running
from .redis_values import RedisValues
from .state import ClusterState, ClusterUnavailable, log

#: Commands from other instances being handled at once; more wait in Redis's channel buffer.
MAX_COMMANDS = 64
COMMAND_TIMEOUT_S = 3.0
DEGRADED_LOG_EVERY_S = 10.0


def redact_url(url: str) -> str:
    """The URL for a log line, without a password."""
    _, sep, tail = url.rpartition("@")
    return f"{url.split('://')[0]}://***@{tail}" if sep else url


class RedisCluster(ClusterState):
    mode = "redis"

    def __init__(self, runtime: Any) -> None:
        super().__init__(runtime)
        cfg = self.config
        p = cfg.key_prefix
        self.k_slots = p + "slots"
        self.k_instances = p + "instances"
        self.k_calls = p + "calls:" + self.instance_id
        self.ch_commands = p + "ctl:" + self.instance_id
        self.ch_replies = p + "reply:" + self.instance_id
        self.ttl_ms = int(cfg.slot_ttl_s * 1000)
        retry = Retry(NoBackoff(), 1)  # one immediate retry: a pooled socket Redis closed
        pool = BlockingConnectionPool.from_url(
            cfg.redis_url,
            max_connections=cfg.pool_size + 1,  # + the pub/sub listener's own connection
            timeout=cfg.command_timeout_s,
            socket_timeout=cfg.command_timeout_s,
            socket_connect_timeout=cfg.connect_timeout_s,
            retry=retry,
        )
        self.redis = Redis(connection_pool=pool, retry=retry)
        self._admit = self.redis.register_script(scripts.ADMIT)
        self._heartbeat = self.redis.register_script(scripts.HEARTBEAT)
        self._live = self.redis.register_script(scripts.LIVE_INSTANCES)
        self.up = False
        self.slots: dict[str, str | None] = {}  # live call slots here → subject
        self.degraded_admissions = 0
        self._warned_at = -DEGRADED_LOG_EVERY_S
        self.outages = 0
        self.fleet_slots = 0
        self.instances = 0
        self.beats = 0  # heartbeats written, for tests and /health
        self._tasks: set[asyncio.Task[Any]] = set()
        self._replies: dict[str, asyncio.Future[dict[str, Any] | None]] = {}
        self._commands: set[asyncio.Task[Any]] = set()
        self.sessions = SessionSync(self)

    # ----------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        try:
            await self.redis.ping()
            await self._beat()
        except LOST as exc:
            await self.redis.aclose()
            raise ClusterUnavailable(
                f"cluster.redis_url: cannot reach Redis at {redact_url(self.config.redis_url)} "
                f"({exc or type(exc).__name__}); start Redis, fix the URL, or unset "
                "cluster.redis_url to run a single instance"
            ) from None
        self.up = True
        log.info("cluster: instance %s joined through Redis", self.instance_id)
        for coro in (self._heartbeat_loop(), self._listen(), self.sessions.writer()):
            task = asyncio.ensure_future(coro)
            self._tasks.add(task)

    async def stop(self) -> None:
        for task in [*self._tasks, *self._commands]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._commands, return_exceptions=True)
        self._tasks.clear()
        if self.up:
            with contextlib.suppress(*LOST):
                await self.sessions.flush()
                pipe = self.redis.pipeline(transaction=True)
                if self.slots:
                    pipe.zrem(self.k_slots, *self.slots)
                pipe.zrem(self.k_instances, self.instance_id)
                pipe.delete(self.k_calls)
                await pipe.execute()
        await self.redis.aclose()

    def lost(self, exc: BaseException) -> None:
        """Redis stopped answering: go on with local limits until the heartbeat sees it back."""
        if self.up:
            self.up = False
            self.outages += 1
            log.warning(
                "cluster: Redis lost (%s); calls go on, new calls are admitted on this "
                "instance's limits only until it is back",
                exc or type(exc).__name__,
            )

    async def _recovered(self) -> None:
        await self._beat()  # re-registers the live calls before anything is admitted
        self.up = True
        log.warning("cluster: Redis is back; fleet-wide limits apply again")
        self.sessions.wake()

    # ---------------------------------------------------------------------------- admission

    def _subject_key(self, subject: str | None) -> str:
        return f"{self.config.key_prefix}subject:{subject}" if subject is not None else ""

    async def admit(self, slot: str, subject: str | None, live: bool = True) -> str | None:
        if not self.up:
            return self._degraded(slot, subject, live)
        limits = self.runtime.config.security.limits
        key = self._subject_key(subject)
        try:
            ok, *why = await self._admit(
                keys=[self.k_slots, key or self.k_slots, key + ":rate" if key else self.k_slots],
                args=[
                    slot,
                    self.ttl_ms,
                    self.config.max_calls,
                    limits.max_calls_per_subject if subject is not None else 0,
                    self.config.calls_per_subject_per_minute,
                ],
            )
        except LOST as exc:
            self.lost(exc)
            return self._degraded(slot, subject, live)
        if not ok:
            reason = why[0].decode() if why else "fleet"
            return {
                "fleet": f"the fleet is at capacity ({self.config.max_calls} calls)",
                "subject": "too many concurrent calls for this subject",
                "rate": "too many new calls for this subject; slow down",
            }.get(reason, reason)
        if live:
            self.slots[slot] = subject
        return None

    def _degraded(self, slot: str, subject: str | None, live: bool) -> None:
        self.degraded_admissions += 1
        now = time.monotonic()
        if now - self._warned_at >= DEGRADED_LOG_EVERY_S:  # a log line, not a flood of them
            self._warned_at = now
            log.warning(
                "cluster: Redis unavailable; calls admitted on local limits only (%d so far)",
                self.degraded_admissions,
            )
        if live:
            self.slots[slot] = subject
        return None

    async def release(self, slot: str) -> None:
        subject = self.slots.pop(slot, None)
        if not self.up:
            return  # the slot expires by itself; after an outage it is not re-added
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(self.k_slots, slot)
        if subject is not None:
            pipe.zrem(self._subject_key(subject), slot)
        try:
            await pipe.execute()
        except LOST as exc:
            self.lost(exc)

    # ----------------------------------------------------------------------------- heartbeat

    async def _beat(self) -> None:
        args: list[Any] = [self.ttl_ms, self.instance_id]
        for slot, subject in self.slots.items():
            args += [slot, self._subject_key(subject)]
        calls = {cid: json.dumps(self._call_info(c)) for cid, c in self.runtime.calls.items()}
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.k_calls)
        if calls:
            pipe.hset(self.k_calls, mapping=calls)
        await self._heartbeat(
            keys=[self.k_slots, self.k_instances, self.k_calls], args=args, client=pipe
        )
        pipe.zcard(self.k_instances)
        *_, self.fleet_slots, self.instances = await pipe.execute()
        self.beats += 1

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_s)
            still_running()
            try:
                if self.up:
                    await self._beat()
                else:
                    await self.redis.ping()
                    await self._recovered()
            except LOST as exc:
                still_running()
                self.lost(exc)

    # ------------------------------------------------------------------- calls and commands

    def _call_info(self, call: Any) -> dict[str, Any]:
        return {**call.info(), "instance": self.instance_id}

    async def _live_instances(self) -> list[str]:
        return [i.decode() for i in await self._live(keys=[self.k_instances])]

    async def fleet_calls(self) -> list[dict[str, Any]]:
        if not self.up:
            return await super().fleet_calls()
        try:
            instances = await self._live_instances()
            pipe = self.redis.pipeline(transaction=False)
            for instance in instances:
                pipe.hvals(self.config.key_prefix + "calls:" + instance)
            found = await pipe.execute()
        except LOST as exc:
            self.lost(exc)
            return await super().fleet_calls()
        theirs = [json.loads(v) for vals, i in zip(found, instances, strict=True) for v in vals]
        mine = await super().fleet_calls()  # fresher than what the last heartbeat wrote
        return mine + [c for c in theirs if c.get("instance") != self.instance_id]

    async def owner_of(self, call_id: str) -> str | None:
        instances = await self._live_instances()
        pipe = self.redis.pipeline(transaction=False)
        for instance in instances:
            pipe.hexists(self.config.key_prefix + "calls:" + instance, call_id)
        found = await pipe.execute()
        return next((i for i, has in zip(instances, found, strict=True) if has), None)

    async def command(self, call_id: str, op: str, **args: Any) -> dict[str, Any] | None:
        if call_id in self.runtime.calls:
            return await self.run_local(call_id, op, args)
        try:
            if not self.up:
                raise ConnectionError("Redis is unavailable")
            owner = await self.owner_of(call_id)
            if owner is None or owner == self.instance_id:
                return None
            return await self.ask(owner, call_id, op, args)
        except LOST as exc:
            self.lost(exc)
            raise ClusterUnavailable(f"the fleet cannot be reached: {exc}") from None

    async def ask(self, owner: str, call_id: str, op: str, args: dict[str, Any]) -> Any:
        """Send `op` to the instance that runs `call_id` and wait for its answer."""
        request = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._replies[request] = future
        message = {
            "id": request,
            "op": op,
            "call_id": call_id,
            "args": args,
            "reply_to": self.instance_id,
        }
        try:
            channel = self.config.key_prefix + "ctl:" + owner
            if not await self.redis.publish(channel, json.dumps(message)):
                return None  # the owner is gone (its slots expire on their own)
            return await asyncio.wait_for(future, COMMAND_TIMEOUT_S)
        finally:
            self._replies.pop(request, None)

    async def _listen(self) -> None:
        while True:
            still_running()
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.ch_commands, self.ch_replies)
                while True:
                    msg = await pubsub.get_message(timeout=self.config.heartbeat_s)
                    still_running()
                    if msg is None:
                        continue
                    try:
                        self._dispatch(msg["channel"].decode(), json.loads(msg["data"]))
                    except (ValueError, KeyError, TypeError, AttributeError) as exc:
                        log.warning("cluster: unreadable message on %s: %s", msg["channel"], exc)
            except LOST as exc:
                still_running()
                self.lost(exc)
                await asyncio.sleep(self.config.heartbeat_s)  # the heartbeat probes; retry then
            finally:
                with contextlib.suppress(*LOST):
                    await pubsub.aclose()

    def _dispatch(self, channel: str, msg: dict[str, Any]) -> None:
        if channel == self.ch_replies:
            future = self._replies.get(msg.get("id", ""))
            if future is not None and not future.done():
                future.set_result(msg.get("result"))
            return
        if len(self._commands) >= MAX_COMMANDS:
            log.warning("cluster: too many commands at once; %s dropped", msg.get("op"))
            return
        task = asyncio.ensure_future(self._answer(msg))
        self._commands.add(task)
        task.add_done_callback(self._commands.discard)

    async def _answer(self, msg: dict[str, Any]) -> None:
        try:
            result = await self.run_local(str(msg.get("call_id")), str(msg.get("op")), msg["args"])
            reply = {"id": msg.get("id"), "result": result}
            channel = self.config.key_prefix + "reply:" + str(msg.get("reply_to"))
            await self.redis.publish(channel, json.dumps(reply, default=str))
        except LOST as exc:
            self.lost(exc)
        except Exception:  # one bad command must not stop the listener
            log.exception("cluster: command %s failed", msg.get("op"))

    def _make_values(self) -> Any:
        return RedisValues(self)

    # ------------------------------------------------------------------------------ sessions

    async def session_created(self, session: Any) -> None:
        await self.sessions.created(session)

    async def fetch_session(self, store: Any, session_id: str) -> Any:
        return await self.sessions.fetch(store, session_id)

    async def forget_session(self, session_id: str) -> None:
        # through the outbox, after any write of the session's state still queued there
        key = self.sessions.prefix + session_id
        self.sessions.put(key + ":state", lambda pipe: pipe.delete(key, key + ":state"))

    @hookimpl
    def call_started(self, call: Any) -> None:
        key, info = self.k_calls, json.dumps(self._call_info(call), default=str)

        def listed(pipe: Any) -> None:
            pipe.hset(key, call.id, info)
            pipe.pexpire(key, self.ttl_ms)

        self.sessions.put("call:" + call.id, listed)
        if call.session_id:
            self.sessions.save(call, live=True)

    @hookimpl
    def turn_completed(self, call: Any, turn: dict[str, Any]) -> None:
        if call.session_id:
            self.sessions.save(call, live=True)

    @hookimpl
    def call_ended(self, call: Any, reason: str) -> None:
        key = self.k_calls
        self.sessions.put("call:" + call.id, lambda pipe: pipe.hdel(key, call.id))
        if call.session_id:
            self.sessions.save(call, live=False)

    # -------------------------------------------------------------------------------- status

    def health(self) -> dict[str, Any]:
        return {
            **super().health(),
            "redis": "up" if self.up else "down",
            "instances": self.instances,
            "fleet_calls": self.fleet_slots,
            "max_fleet_calls": self.config.max_calls,
            "degraded_admissions": self.degraded_admissions,
            "checked_at": round(time.time(), 1),
        }

    def metric_families(self) -> list[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        return [
            GaugeMetricFamily("voicebot_cluster_redis_up", "Redis reachable", value=int(self.up)),
            CounterMetricFamily(
                "voicebot_cluster_degraded_admissions",
                "Calls admitted on local limits alone while Redis was lost",
                value=self.degraded_admissions,
            ),
            GaugeMetricFamily(
                "voicebot_cluster_fleet_calls", "Calls on every instance", value=self.fleet_slots
            ),
        ]
