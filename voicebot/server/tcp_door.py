"""Phone calls that arrive over plain TCP (Asterisk AudioSocket): one listening server per
enabled `TcpCarrier`, one call per connection.

A thin asyncio shell around the plugin's sans-I/O `StreamProtocol`, the TCP twin of
`media_stream.py`: bytes are fed to the protocol, its events to the call (`feed_audio`, `dtmf`,
`hangup`); the call's audio is rendered back. A peer controls every byte here, so a framing error
or an oversized frame is answered with the protocol's error frame and the connection closed (no
traceback), a connection that never names its call is dropped after `START_TIMEOUT_S`, open
connections are capped, the usual per-connection rate limits apply, and however the socket ends
the call is hung up and awaited before the handler returns.

There is no playback acknowledgement on these protocols, so the call estimates what was heard
from the paced send (`supports_marks = False`, like the browser's playback clock); a barge-in
drops everything not yet sent, and at most `pipeline.playback_lead_ms` of audio already written
to the socket still plays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web

from ..runtime import CapacityError
from ..telephony.peers import PeerFilter
from ..telephony.serializer import (
    Dtmf,
    MalformedMessage,
    Media,
    Start,
    Stop,
    TelephonyError,
    UnsupportedFormat,
)
from ..telephony.stream import FrameTooLarge, StreamProtocol, TcpCarrier
from .limits import ConnectionLimiter
from .telephony import provider_options

log = logging.getLogger("voicebot.server.tcp_door")

START_TIMEOUT_S = 10.0  # a connection that never says which call it carries is not a call
READ_BYTES = 16 * 1024
DRAIN_TIMEOUT_S = 5.0  # a peer that stops reading our audio is gone
CLOSE_TIMEOUT_S = 2.0


class TcpCallIO:
    """What the call sees of a TCP phone line: paced audio frames, and a hang-up frame."""

    supports_marks = False

    def __init__(self, writer: asyncio.StreamWriter, protocol: StreamProtocol) -> None:
        self._writer = writer
        self._proto = protocol
        self._closed = False

    async def write(self, data: bytes) -> None:
        """Writes after the peer left are dropped: the reader hangs the call up."""
        if self._closed or self._writer.is_closing():
            return
        self._writer.write(data)
        try:  # asyncio.timeout, not wait_for: 3.11's wait_for can swallow the call's cancel
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                await self._writer.drain()
        except (ConnectionError, TimeoutError):
            self._writer.transport.abort()

    async def send_audio(self, frame: bytes) -> None:
        await self.write(self._proto.render_media(frame))

    async def send_event(self, event: dict[str, Any]) -> None:
        """A phone line has no side channel for diagnostics; the call's hooks still see them."""

    async def send_mark(self, name: str) -> None:
        """Never called: `supports_marks` is False."""

    async def clear(self) -> None:
        """Nothing to send: the protocol has no "clear", and the call already dropped every
        frame it had not written (at most `playback_lead_ms` ahead of the far end)."""

    async def transfer(self, target: str) -> bool:
        log.error(
            "%s call: cannot transfer to %s: transfer the call in the dialplan after the bot "
            "hangs up (e.g. a variable the flow set, read after AudioSocket() returns)",
            self._proto.name,
            target,
        )
        return False

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """The call ends itself: tell the PBX with a hang-up frame, then close the socket."""
        await self.shut(self._proto.render_hangup())

    async def shut(self, last: bytes = b"") -> None:
        if self._closed:
            return
        if last:
            await self.write(last)
        self._closed = True
        self._writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._writer.wait_closed()


class TcpConnection:
    """One connection: wait for the call's id, then feed the call until either side ends."""

    def __init__(
        self,
        runtime: Any,
        carrier: TcpCarrier,
        options: Any,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.runtime = runtime
        self.name = carrier.name
        self.proto = carrier.protocol(options)
        self.reader = reader
        self.io = TcpCallIO(writer, self.proto)
        self.remote = str(writer.get_extra_info("peername") or "")
        self.call: Any = None
        self._call_task: asyncio.Task[None] | None = None
        fmt = self.proto.media_format.audio_format()
        self._format = fmt
        self._limiter = ConnectionLimiter(runtime.config.security.limits, fmt)

    async def run(self) -> None:
        try:
            start = await self._await_start()
            if start is not None and await self._start(start):
                await self._read()
        finally:
            if self.call is not None:
                self.call.hangup("remote")
            if self._call_task is not None:
                await self._call_task
            await self.io.shut()

    async def refuse(self, code: str, why: str, level: int = logging.WARNING) -> None:
        log.log(level, "%s connection from %s: %s; closed", self.name, self.remote, why)
        if self.call is not None:
            self.call.end_reason = code
            self.call.hangup(code)
        await self.io.shut(self.proto.render_error(code))

    async def _events(self, timeout: float | None = None) -> list[Any] | None:
        """The events of the next read; None when the connection is over."""
        try:
            async with asyncio.timeout(timeout):
                data = await self.reader.read(READ_BYTES)
        except TimeoutError:
            await self.refuse("no_start", f"no call id within {timeout}s")
            return None
        except ConnectionError:
            return None
        if not data:
            return None
        try:
            events = self.proto.feed(data)
        except FrameTooLarge as exc:
            await self.refuse("too_large", str(exc))
            return None
        except UnsupportedFormat as exc:
            await self.refuse("unsupported", str(exc))
            return None
        except (MalformedMessage, TelephonyError) as exc:
            await self.refuse("protocol", f"bad frame: {exc}")
            return None
        for event in events:
            size = len(event.payload) if isinstance(event, Media) else 0
            refusal = self._limiter.admit(size, self._format)
            if refusal is not None:
                await self.refuse("rate_limited", f"rate limit: {refusal}")
                return None
        return events

    async def _await_start(self) -> Start | None:
        loop = asyncio.get_running_loop()
        timeout = min(START_TIMEOUT_S, self.runtime.config.security.limits.idle_timeout_s)
        deadline = loop.time() + timeout
        while True:
            events = await self._events(max(0.0, deadline - loop.time()))
            if events is None:
                return None
            for event in events:
                if isinstance(event, Start):
                    return event  # the protocol refuses anything else before it
                if isinstance(event, Stop):
                    return None

    async def _start(self, start: Start) -> bool:
        if start.call_id in self.runtime.calls:
            await self.refuse("protocol", f"call {start.call_id} is already connected")
            return False
        variables = {
            "call_sid": start.call_id,
            "stream_sid": start.stream_id,
            "telephony_provider": self.name,
        }
        try:
            self.call = self.runtime.new_call(
                transport=self.name,
                io=self.io,
                audio_format=start.media_format.audio_format(),
                variables=variables,
                call_id=start.call_id,
            )
        except CapacityError as exc:
            await self.refuse("capacity", f"call {start.call_id} refused: {exc}")
            return False
        self._call_task = asyncio.create_task(self._run_call(), name=f"call-{start.call_id}")
        log.info("%s call %s started from %s", self.name, start.call_id, self.remote)
        return True

    async def _run_call(self) -> None:
        try:
            await self.runtime.run_call(self.call)
        except Exception:  # a bug in one call must not take the connection with it
            log.exception("%s call %s failed", self.name, self.call.id)
        finally:
            if self.call.end_reason == "remote":
                await self.io.shut()
            else:
                await self.io.close()

    async def _read(self) -> None:
        call = self.call
        while True:
            events = await self._events()
            if events is None:
                return
            for event in events:
                if isinstance(event, Media):
                    call.feed_audio(event.payload)
                elif isinstance(event, Dtmf):
                    call.dtmf(event.digit)
                elif isinstance(event, Stop):
                    log.info("%s call %s: hang-up (%s)", self.name, call.id, event.call_id)
                    call.hangup("remote")
                    return
                elif isinstance(event, Start):
                    await self.refuse("protocol", "a second call id on one connection")
                    return


class TcpDoors:
    """The listening servers of every enabled TCP carrier, and their open connections."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.idle = asyncio.Event()  # no connection open: lets shutdown and tests wait for it
        self.idle.set()

    def _max_connections(self) -> int:
        return 2 * self.runtime.config.security.limits.max_calls

    async def start(self, _app: Any = None) -> None:
        carriers = getattr(self.runtime.pm.registry, "tcp_carriers", {})
        for name, carrier in sorted(carriers.items()):
            options = provider_options(self.runtime.config, name, carrier.protocol)
            if not options.enabled:
                continue

            peers = PeerFilter(getattr(options, "allow_from", ()))

            def accept(
                reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter,
                carrier: TcpCarrier = carrier,
                options: Any = options,
                peers: PeerFilter = peers,
            ) -> None:
                if self._admitted(carrier, peers, writer):
                    self._accept(carrier, options, reader, writer)

            server = await asyncio.start_server(accept, options.host, options.port)
            self._servers.append(server)
            self.ports[name] = server.sockets[0].getsockname()[1]
            who = (
                f"only peers in telephony.{name}.allow_from can place calls"
                if peers.networks
                else "anyone who can reach this port can place calls; set "
                f"telephony.{name}.allow_from or keep it on a private network"
            )
            log.warning(
                "%s listening on %s:%d: it has no authentication, so %s (docs/telephony.md)",
                carrier.title,
                options.host,
                self.ports[name],
                who,
            )

    @staticmethod
    def _admitted(carrier: TcpCarrier, peers: PeerFilter, writer: asyncio.StreamWriter) -> bool:
        """A peer outside the allow-list is closed at once, before a byte is read."""
        peer = writer.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if peers.allows(host):
            return True
        if peers.first_refusal(host):
            log.warning(
                "%s connection from %s refused: not in telephony.%s.allow_from (logged once "
                "per peer)",
                carrier.title,
                host or "an unknown peer",
                carrier.name,
            )
        writer.transport.abort()
        return False

    def _accept(
        self,
        carrier: TcpCarrier,
        options: Any,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        connection = TcpConnection(self.runtime, carrier, options, reader, writer)
        if len(self._tasks) >= self._max_connections():
            task = asyncio.create_task(
                connection.refuse("capacity", "too many open connections"), name="tcp-refuse"
            )
        else:
            task = asyncio.create_task(connection.run(), name=f"tcp-{carrier.name}")
        self._tasks.add(task)
        self.idle.clear()
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self.idle.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("TCP phone connection failed", exc_info=task.exception())

    async def stop(self, _app: Any = None) -> None:
        """Stop listening, hang up every call still on a TCP line, and wait for them."""
        for server in self._servers:
            server.close()
        for call in list(self.runtime.calls.values()):
            if isinstance(call.io, TcpCallIO):
                call.hangup("shutdown")
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=CLOSE_TIMEOUT_S + DRAIN_TIMEOUT_S)
        for task in set(self._tasks):
            task.cancel()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()


TCP_DOORS = web.AppKey("tcp_doors", TcpDoors)
