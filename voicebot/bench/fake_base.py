"""A scriptable aiohttp server on 127.0.0.1 that the cloud fakes build on.

Each fake route takes its next behaviour from a per-route script (`server.script("speech",
Fail(429), OK)`); an empty script means "answer normally". Every request is recorded, and so is
every client that went away before the answer was complete, so a test can assert that closing a
stream really reached the server.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Fail:
    """Answer with this HTTP status (a WebSocket route rejects the handshake with it)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "scripted failure"


@dataclass(frozen=True)
class Stall:
    """Send `after_chunks` chunks, then nothing until the client gives up."""

    after_chunks: int = 0


@dataclass(frozen=True)
class Drop:
    """Send `after_chunks` chunks (a WebSocket: receive that many audio frames), then cut the
    connection without a proper end."""

    after_chunks: int = 0


@dataclass(frozen=True)
class Drip:
    """Send `after_chunks` chunks, then the rest one byte every `every` seconds: a server that
    is never silent long enough for a per-read timeout, yet never finishes."""

    every: float
    after_chunks: int = 0


@dataclass(frozen=True)
class Answer:
    """Answer 200 with this body and content type whatever was asked (a misrouted proxy, a
    captive portal)."""

    body: bytes = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body></body></html>"
    content_type: str = "text/html"


@dataclass(frozen=True)
class Ok:
    """Answer normally (useful after a Fail in a script)."""


OK = Ok()
Behaviour = Fail | Stall | Drop | Drip | Answer | Ok


@dataclass
class Recorded:
    route: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None


class FakeServer:
    """Base class: subclasses add routes in `routes()` and use the helpers below."""

    def __init__(self) -> None:
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.add_routes(self.routes())
        self.requests: list[Recorded] = []
        self.disconnects: list[str] = []
        self.completed: list[str] = []
        self._scripts: dict[str, deque[Behaviour]] = defaultdict(deque)
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        #: Seconds between audio chunks: a long, slow answer a test can cut off midway.
        self.audio_pace = 0.0
        #: False for a long-running fake (voicebot bench): requests are not kept
        self.keep_records = True

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    # ---------------------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> FakeServer:
        # handler_cancellation: a client that disconnects cancels its handler, which is how a
        # stalled handler learns that the client left.
        self._runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---------------------------------------------------------------------------- scripting

    def script(self, route: str, *behaviours: Behaviour) -> None:
        self._scripts[route].extend(behaviours)

    def next_behaviour(self, route: str) -> Behaviour:
        queue = self._scripts[route]
        return queue.popleft() if queue else OK

    def count(self, route: str) -> int:
        return sum(1 for r in self.requests if r.route == route)

    async def wait_for(self, predicate: Any, within: float = 5.0) -> None:
        """Wait until `predicate()` holds: for events that happen on the server's side."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    async def wait_disconnect(self, route: str, within: float = 5.0) -> None:
        await self.wait_for(lambda: route in self.disconnects, within)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def record(self, route: str, request: web.Request, body: Any = None) -> None:
        if not self.keep_records:
            return
        self.requests.append(
            Recorded(route, request.path, dict(request.query), dict(request.headers), body)
        )
        await self._notify()

    async def mark(self, where: list[str], route: str) -> None:
        if not self.keep_records:
            return
        where.append(route)
        await self._notify()

    # ---------------------------------------------------------------------------- answering

    @staticmethod
    def fail_response(fail: Fail) -> web.Response:
        return web.json_response(
            {"error": {"message": fail.message, "type": "scripted", "code": fail.status}},
            status=fail.status,
            headers=fail.headers,
        )

    @staticmethod
    def answer_response(answer: Answer) -> web.Response:
        return web.Response(body=answer.body, headers={"Content-Type": answer.content_type})

    async def stream(
        self,
        route: str,
        request: web.Request,
        chunks: Iterable[bytes] | AsyncIterator[bytes],
        behaviour: Behaviour,
        content_type: str,
        pace: float = 0.0,
    ) -> web.StreamResponse:
        """Send `chunks` as a chunked HTTP body, `pace` seconds apart, obeying `behaviour`."""
        resp = web.StreamResponse(headers={"Content-Type": content_type})
        await resp.prepare(request)
        sent = 0
        try:
            async for chunk in _aiter(chunks):
                if await self._before_chunk(behaviour, sent, request):
                    return resp
                if isinstance(behaviour, Drip) and sent >= behaviour.after_chunks:
                    for i in range(len(chunk)):
                        await resp.write(chunk[i : i + 1])
                        await asyncio.sleep(behaviour.every)
                else:
                    await resp.write(chunk)
                sent += 1
                if pace:
                    await asyncio.sleep(pace)
            if await self._before_chunk(behaviour, sent, request, at_end=True):
                return resp
            await resp.write_eof()
            await self.mark(self.completed, route)
        except (asyncio.CancelledError, ConnectionResetError):
            await asyncio.shield(self.mark(self.disconnects, route))
            raise
        return resp

    async def _before_chunk(
        self, behaviour: Behaviour, sent: int, request: web.Request, at_end: bool = False
    ) -> bool:
        """True when the answer must end here (Drop); waits forever on a Stall."""
        if isinstance(behaviour, Stall) and (sent >= behaviour.after_chunks or at_end):
            await asyncio.Event().wait()  # until the client leaves and cancels us
        if isinstance(behaviour, Drop) and (sent >= behaviour.after_chunks or at_end):
            if request.transport is not None:
                request.transport.abort()
            return True
        return False


async def _aiter(chunks: Iterable[bytes] | AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if isinstance(chunks, AsyncIterator):
        async for chunk in chunks:
            yield chunk
    else:
        for chunk in chunks:
            yield chunk
