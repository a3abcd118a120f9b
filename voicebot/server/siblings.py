"""One worker of `voicebot run --workers N`, answering `/health`, `/calls`, `/ready` and `/drain`
for the whole server, and taking phone stream tokens a sibling minted.

The port is shared with SO_REUSEPORT, so a monitoring request lands on any one worker; reporting
that worker alone would show a load balancer half the calls and none of a sibling's trouble.
Each worker therefore serves its own figures on a private unix socket in the cluster's state
directory (mode 0700, made by the supervisor), and the worker that got the request asks its
siblings there and merges. Only small JSON crosses: no audio, and nothing is written per call.
A sibling that does not answer within `SIBLING_TIMEOUT_S` (crashed, restarting) is listed as
unreachable and makes the server `degraded`, rather than stalling the probe.

`POST /drain` stops every worker taking calls: the worker that got it tells its siblings, and
leaves a marker in the state directory so that a worker the supervisor restarts afterwards does
not take calls either.

A carrier's answer webhook and its media stream are two connections, hashed to workers
independently: a worker that does not know a stream's token asks every sibling to take it
(`POST /stream-token`); the one that minted it consumes it and answers its variables. A sibling
silent for `TOKEN_TIMEOUT_S` counts as not having it: the stream is refused, not stalled.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

log = logging.getLogger("voicebot.server.siblings")

CLUSTER_DIR_ENV = "VOICEBOT_CLUSTER_DIR"
WORKER_INDEX_ENV = "VOICEBOT_WORKER_INDEX"
WORKER_COUNT_ENV = "VOICEBOT_WORKER_COUNT"
SIBLING_TIMEOUT_S = 2.0
#: A carrier waits a few seconds at most for the stream's first audio.
TOKEN_TIMEOUT_S = 1.0
#: A token and a call id are well under 1 KiB; nothing larger is read.
MAX_TOKEN_REQUEST_BYTES = 4096


def socket_path(state_dir: Path, index: int) -> Path:
    return state_dir / f"worker-{index}.sock"


def ready_path(state_dir: Path, index: int) -> Path:
    """Written once the worker listens on the public port: the supervisor's readiness signal."""
    return state_dir / f"worker-{index}.ready"


def drain_marker(state_dir: Path) -> Path:
    return state_dir / "draining"


def local_calls(runtime: Any) -> dict[str, Any]:
    return {
        "active_calls": len(runtime.calls),
        "max_calls": runtime.config.security.limits.max_calls,
        "calls": [call.info() for call in runtime.calls.values()],
    }


class Cluster:
    """This worker's view of its siblings."""

    def __init__(self, runtime: Any, state_dir: Path, index: int, count: int) -> None:
        self.runtime = runtime
        self.state_dir = state_dir
        self.index = index
        self.count = count
        self.pid = os.getpid()
        self._runner: web.AppRunner | None = None
        #: this worker's phone stream tokens (`stream_tokens.TokenStore`), if it takes calls
        self.tokens: Any = None

    @classmethod
    def from_env(cls, runtime: Any) -> Cluster | None:
        state = os.environ.get(CLUSTER_DIR_ENV)
        if not state:
            return None
        index = int(os.environ.get(WORKER_INDEX_ENV, "0"))
        return cls(runtime, Path(state), index, int(os.environ.get(WORKER_COUNT_ENV, "1")))

    # ------------------------------------------------------------------------- own figures

    def _me(self) -> dict[str, Any]:
        return {"worker": self.index, "pid": self.pid}

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({**self.runtime.health(), **self._me()})

    async def _calls(self, request: web.Request) -> web.Response:
        return web.json_response({**local_calls(self.runtime), **self._me()})

    def _stop_taking_calls(self) -> dict[str, Any]:
        self.runtime.accepting = False
        return {"status": "draining", "active_calls": len(self.runtime.calls), **self._me()}

    async def _drain(self, request: web.Request) -> web.Response:
        return web.json_response(self._stop_taking_calls())

    async def _take_token(self, request: web.Request) -> web.Response:
        """A sibling's stream token, if this worker minted it: consumed here, answered once."""
        try:
            ask = await request.json()
            token, call_id = str(ask["token"]), str(ask.get("call_id", ""))
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "expected {token, call_id}"}, status=400)
        if self.tokens is None or not self.tokens.local.knows(token):
            return web.json_response({"known": False, "variables": None})
        # ours: refused or not, no other sibling has it
        variables = self.tokens.local.take(token, call_id)
        log.info(
            "worker %d: stream token of call %r %s a sibling",
            self.index,
            call_id,
            "refused to" if variables is None else "handed to",
        )
        return web.json_response({"known": True, "variables": variables})

    async def start(self, _app: web.Application | None = None) -> None:
        """Serve this worker's own figures and tokens to its siblings (no auth: the socket's
        directory is private to the server's user)."""
        if drain_marker(self.state_dir).exists():  # restarted after `POST /drain`
            self.runtime.accepting = False
        admin = web.Application(client_max_size=MAX_TOKEN_REQUEST_BYTES)
        admin.router.add_get("/health", self._health)
        admin.router.add_get("/calls", self._calls)
        admin.router.add_post("/drain", self._drain)
        admin.router.add_post("/stream-token", self._take_token)
        self._runner = web.AppRunner(admin, access_log=None)
        await self._runner.setup()
        path = socket_path(self.state_dir, self.index)
        path.unlink(missing_ok=True)  # left by a predecessor that crashed
        await web.UnixSite(self._runner, str(path)).start()

    def listening(self) -> None:
        ready_path(self.state_dir, self.index).write_text(str(self.pid))

    async def stop(self, _app: web.Application | None = None) -> None:
        ready_path(self.state_dir, self.index).unlink(missing_ok=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        socket_path(self.state_dir, self.index).unlink(missing_ok=True)

    # ------------------------------------------------------------------------- siblings

    async def _ask(self, index: int, route: str, method: str = "GET") -> dict[str, Any]:
        path = socket_path(self.state_dir, index)
        try:
            async with (
                asyncio.timeout(SIBLING_TIMEOUT_S),
                aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path))) as http,
                http.request(method, f"http://worker{route}") as r,
            ):
                return await r.json()
        except (OSError, aiohttp.ClientError, TimeoutError, ValueError):
            return {"worker": index, "status": "unreachable"}

    async def _offer(self, index: int, token: str, call_id: str) -> dict[str, Any] | None:
        """Sibling `index`'s answer to taking `token`; None if it could not be asked."""
        path = socket_path(self.state_dir, index)
        try:
            async with (
                asyncio.timeout(TOKEN_TIMEOUT_S),
                aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(path))) as http,
                http.post(
                    "http://worker/stream-token", json={"token": token, "call_id": call_id}
                ) as r,
            ):
                answer = await r.json()
        except (OSError, aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return answer if isinstance(answer, dict) and answer.get("known") else None

    async def take_token(self, token: str, call_id: str) -> dict[str, str] | None:
        """The variables of a stream token a sibling minted, consumed there; None if no sibling
        has it (or none answered in time). The first that knows it decides."""
        others = [i for i in range(self.count) if i != self.index]
        asks = [asyncio.ensure_future(self._offer(i, token, call_id)) for i in others]
        try:
            for done in asyncio.as_completed(asks):
                answer = await done
                if answer is not None:
                    variables = answer.get("variables")
                    if not isinstance(variables, dict):
                        return None
                    return {str(k): str(v) for k, v in variables.items()}
            return None
        finally:
            for ask in asks:
                ask.cancel()
            await asyncio.gather(*asks, return_exceptions=True)

    async def _all(
        self, route: str, mine: dict[str, Any], method: str = "GET"
    ) -> list[dict[str, Any]]:
        others = [i for i in range(self.count) if i != self.index]
        answers = await asyncio.gather(*(self._ask(i, route, method) for i in others))
        return sorted([{**mine, **self._me()}, *answers], key=lambda a: a["worker"])

    async def health(self, mine: dict[str, Any]) -> dict[str, Any]:
        every = await self._all("/health", mine)
        up = [h for h in every if h.get("status") != "unreachable"]
        statuses = {h.get("status") for h in every}
        if statuses == {"healthy"}:
            status = "healthy"
        elif "draining" in statuses:
            status = "draining"
        else:
            status = "degraded"
        lags = [h["event_loop_lag_ms"] for h in up if "event_loop_lag_ms" in h]
        return {
            **mine,
            "status": status,
            "active_calls": sum(h.get("active_calls", 0) for h in up),
            "event_loop_lag_ms": {
                q: max((lag[q] for lag in lags), default=0.0) for q in ("p50", "p99")
            },
            "processes": [
                {
                    k: h[k]
                    for k in ("worker", "pid", "status", "active_calls", "event_loop_lag_ms")
                    if k in h
                }
                for h in every
            ],
        }

    async def drain(self) -> dict[str, Any]:
        """Every worker stops taking calls; calls in progress go on."""
        drain_marker(self.state_dir).write_text(str(self.pid))
        every = await self._all("/drain", self._stop_taking_calls(), "POST")
        up = [a for a in every if a.get("status") != "unreachable"]
        return {
            "status": "draining",
            "active_calls": sum(a.get("active_calls", 0) for a in up),
            "processes": [
                {k: a[k] for k in ("worker", "pid", "status", "active_calls") if k in a}
                for a in every
            ],
        }

    async def calls(self, mine: dict[str, Any]) -> dict[str, Any]:
        every = await self._all("/calls", mine)
        calls = []
        for answer in every:
            for call in answer.get("calls", ()):
                calls.append({**call, "worker": answer["worker"], "pid": answer.get("pid")})
        return {
            "active_calls": len(calls),
            "max_calls": sum(a.get("max_calls", 0) for a in every),
            "calls": calls,
            "processes": [
                {k: a[k] for k in ("worker", "pid", "active_calls", "status") if k in a}
                for a in every
            ],
        }


def install(app: web.Application, cluster: Cluster) -> None:
    from .appkeys import CLUSTER
    from .telephony import TELEPHONY

    app[CLUSTER] = cluster
    telephony = app.get(TELEPHONY)
    if telephony is not None:  # a stream may reach a worker other than its answer webhook's
        cluster.tokens = telephony.tokens
        telephony.tokens.siblings = cluster
    app.on_startup.append(cluster.start)
    app.on_cleanup.append(cluster.stop)
