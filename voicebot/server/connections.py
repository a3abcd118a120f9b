"""Connection-level protections the HTTP server needs and aiohttp does not have.

- **Header-read deadline.** aiohttp's only timer on a connection is keep-alive (75 s under
  `run_app`), and a client that trickles its request header a byte at a time holds its socket
  (and a file descriptor) until then: ~1,000 such sockets made `/health` unreachable for 75 s at
  the common fd limit of 1024. aiohttp has no option for a header timeout (its `client_timeout`
  is client-side, `timeout_ceil_threshold` only rounds), hence this hand-written one: a timer per
  connection, armed when a request's first byte arrives (or at connect), cancelled once aiohttp
  has parsed the request line and headers. A late header gets a 408 and the socket is closed.
- **Connections per client address.** Past `max_connections_per_client` a new connection gets a
  503 and is closed before any request is read.
- **File descriptors.** `raise_fd_limit` lifts the soft RLIMIT_NOFILE to the hard limit.
- **Quiet logs.** Client garbage (malformed requests, answered with a JSON 400; slow headers;
  refused connections; asyncio's `accept()` out-of-descriptors error, which it repeats every time
  the listening socket is retried) is one short line, at most one per kind every `LOG_EVERY_S`,
  with a count of what was left out. Real server errors keep their tracebacks.

The hooks are the protocol's own (`connection_made`, `data_received`, `connection_lost`,
`handle_error`) on a `RequestHandler` subclass; aiohttp creates handlers in `web.Server.__call__`,
so `GuardedAppRunner` hands the sites a `web.Server` that makes guarded ones, and `voicebot run`
uses `run_app` here instead of aiohttp's, which always builds a plain `AppRunner`. The private
names used (`_request_count`, `_current_request`, `_messages`, `_upgraded` of the handler,
`_loop`/`_kwargs` of the server, `AppRunner._make_server`) are pinned by
`tests/test_connections.py`, which fails if an aiohttp upgrade changes them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from .rest import json_error

log = logging.getLogger("voicebot.connections")

LOG_EVERY_S = 10.0
ACCEPT_EXHAUSTED = "socket.accept() out of system resource"


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float = 5.0
    max_connections_per_client: int = 256  # 0: no cap


class QuietLog:
    """At most one line per kind every `every_s`; the next line says how many were left out."""

    def __init__(self, logger: logging.Logger, every_s: float = LOG_EVERY_S) -> None:
        self.logger = logger
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._skipped: Counter[str] = Counter()

    def warning(self, kind: str, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -self.every_s) < self.every_s:
            self._skipped[kind] += 1
            return
        self._last[kind] = now
        skipped = self._skipped.pop(kind, 0)
        if skipped:
            msg += f" ({skipped} more like it in the last {self.every_s:g} s not logged)"
        self.logger.warning(msg, *args)


def _raw_response(status: int, reason: str, code: str, message: str) -> bytes:
    body = json.dumps({"type": "error", "code": code, "message": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class ConnectionGuard:
    """What all connections of one server share: the limits, the count per address, the log."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.per_client: Counter[str] = Counter()
        self.quiet = QuietLog(log)

    def admit(self, host: str) -> bool:
        cap = self.limits.max_connections_per_client
        if cap and self.per_client[host] >= cap:
            return False
        self.per_client[host] += 1
        return True

    def release(self, host: str) -> None:
        self.per_client[host] -= 1
        if self.per_client[host] <= 0:
            del self.per_client[host]


class GuardedRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol, plus the header deadline and the per-address cap."""

    __slots__ = ("_client", "_guard", "_header_timer")

    def __init__(self, manager: web.Server, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._client: str | None = None  # set once admitted, so only admitted ones are released
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self._guard.admit(host):
            self._guard.quiet.warning(
                "per_client",
                "refused a connection from %s: it already has %d open "
                "(security.limits.max_connections_per_client)",
                host,
                self._guard.limits.max_connections_per_client,
            )
            self._refuse(transport, 503, "Service Unavailable", "too_many_connections",
                         "too many connections from this address")  # fmt: skip
            return
        self._client = host
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self._between_requests():
            self._arm()  # the first byte of the next request on a kept-alive connection
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed and self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self._client is not None:
            self._guard.release(self._client)
            self._client = None
        super().connection_lost(exc)

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError) or status >= 500:
            return super().handle_error(request, status, exc, message)
        # the client's malformed request, not our error: one line, no traceback, and not the
        # exception's text, which quotes the offending line (it may carry a credential)
        name = type(exc).__name__
        self._guard.quiet.warning(
            "bad_request", "malformed HTTP request from %s: %s (%d)", self._client, name, status
        )
        response = json_error(status, "bad_request", f"malformed HTTP request ({name})")
        response.force_close()
        return response

    def _between_requests(self) -> bool:
        return not (self._upgraded or self._messages or self._current_request is not None)

    def _arm(self) -> None:
        timeout = self._guard.limits.header_timeout_s
        if timeout > 0:
            self._header_timer = self._loop.call_later(timeout, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport is None or not self._between_requests():
            return
        self._guard.quiet.warning(
            "header_timeout",
            "closed a connection from %s: request headers not complete within %g s "
            "(security.limits.header_timeout_s)",
            self._client,
            self._guard.limits.header_timeout_s,
        )
        self._refuse(self.transport, 408, "Request Timeout", "header_timeout",
                     "request headers took too long")  # fmt: skip

    def _refuse(
        self, transport: asyncio.BaseTransport, status: int, reason: str, code: str, message: str
    ) -> None:
        if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
            transport.write(_raw_response(status, reason, code, message))
        transport.close()


class GuardedServer(web.Server):
    """`web.Server` whose protocol factory makes `GuardedRequestHandler`s."""

    def __init__(self, guard: ConnectionGuard, plain: web.Server) -> None:
        super().__init__(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )
        self.guard = guard

    def __call__(self) -> GuardedRequestHandler:
        return GuardedRequestHandler(self, self.guard, loop=self._loop, **self._kwargs)


class GuardedAppRunner(web.AppRunner):
    """`web.AppRunner` with the guard on every connection and the accept() log made quiet."""

    def __init__(self, app: web.Application, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.guard = ConnectionGuard(limits)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous_handler: Callable[..., Any] | None = None

    async def _make_server(self) -> web.Server:
        return GuardedServer(self.guard, await super()._make_server())

    async def setup(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._previous_handler = self._loop.get_exception_handler()
        self._loop.set_exception_handler(self._loop_exception)
        await super().setup()

    async def cleanup(self) -> None:
        try:
            await super().cleanup()
        finally:
            if self._loop is not None:
                self._loop.set_exception_handler(self._previous_handler)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == ACCEPT_EXHAUSTED:
            self.guard.quiet.warning(
                "accept",
                "cannot accept connections: %s; asyncio retries every second "
                "(raise the fd limit, or lower security.limits.max_connections_per_client)",
                context.get("exception"),
            )
        elif self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)


def raise_fd_limit() -> tuple[int, int]:
    """Lift the soft fd limit to the hard one (the kernel allows that without privileges);
    returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d: %s", soft, exc)
            return soft, soft
        return soft, target
    return soft, soft


def limits_from(cfg: Any) -> ConnectionLimits:
    """The connection limits of a loaded `Config`."""
    limits = cfg.security.limits
    return ConnectionLimits(limits.header_timeout_s, limits.max_connections_per_client)


def run_app(
    app: web.Application,
    limits: ConnectionLimits,
    *,
    sock: socket.socket,
    shutdown_timeout: float,
    on_listening: Callable[[], None],
    **runner_kwargs: Any,
) -> None:
    """`web.run_app(app, sock=...)` with a `GuardedAppRunner` (run_app builds its own runner):
    serve until SIGINT/SIGTERM, then drain within `shutdown_timeout`."""
    before, after = raise_fd_limit()
    if after != before:
        log.info("open-file limit raised from %d to %d", before, after)
    asyncio.run(_serve(app, limits, sock, shutdown_timeout, on_listening, runner_kwargs))


async def _serve(
    app: web.Application,
    limits: ConnectionLimits,
    sock: socket.socket,
    shutdown_timeout: float,
    on_listening: Callable[[], None],
    runner_kwargs: dict[str, Any],
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # keepalive_timeout: run_app's default (RequestHandler's own is an hour)
    runner = GuardedAppRunner(
        app, limits, shutdown_timeout=shutdown_timeout, keepalive_timeout=75, **runner_kwargs
    )
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        on_listening()
        await stop.wait()
    finally:
        await runner.cleanup()
