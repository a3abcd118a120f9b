"""One phone call's media-stream WebSocket, for any registered serializer.

The handler is a thin shell around the sans-I/O serializer: it parses each text frame into a
typed event and feeds the call (`feed_audio`, `dtmf`, `mark_played`, `hangup`); the call drives
`TelephonyCallIO`, which renders frames, marks and clears back onto the socket. Nothing here knows
Twilio's field names, so `/telephony/{provider}/media` serves every provider plugin.

A caller (or anyone who found the URL) controls what arrives here, so every malformed message is
logged and ignored, a flood of them closes the stream with 1008, an oversized frame is refused by
aiohttp with 1009, and however the socket ends, the call is hung up and awaited before the
handler returns: nothing outlives the connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from ..protocol.dialect import Silent
from ..protocol.events import Event
from ..providers import AudioFormat
from ..records.audit import audit
from ..runtime import CapacityError
from ..telephony.carrier import FLOW_VARIABLE
from ..telephony.lag import LagHistogram
from ..telephony.serializer import (
    CallControl,
    Connected,
    Dtmf,
    MalformedMessage,
    MalformedStart,
    Mark,
    Media,
    MediaStreamSerializer,
    Outbound,
    Start,
    Stop,
    TelephonyError,
    UnknownEvent,
    UnsupportedFormat,
)
from .limits import ConnectionLimiter, calls_of
from .phone_door import drop_reserved

# the name operators filter on, kept from before the module moved into voicebot.server
log = logging.getLogger("voicebot.transports.media_stream")

START_TIMEOUT_S = 10.0  # a stream that never says which call it carries is not a call
# (or the idle timeout, when shorter: a silent stream before `start` is idle too)
MAX_BAD_MESSAGES = 50  # after this many malformed messages the peer is broken or hostile
_LOGGED_BAD_MESSAGES = 3
_CLOSED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


def _reason(exc: Exception) -> bytes:
    """A close reason: at most 123 bytes by the WebSocket spec, cut on a character boundary."""
    return str(exc).encode()[:120].decode("utf-8", "ignore").encode()


class TelephonyCallIO:
    """What the call sees of its phone line: frames, marks and clears rendered onto the socket.

    Writes after the socket closed are dropped: the call learns of the hang-up through `hangup()`
    from the reader, and must not die of a race with it.

    Marks are bookkept so that only a mark we sent and did not clear reaches the call: after a
    `clear` the provider echoes every pending mark at once, and a late one would otherwise be
    taken as "the caller heard this" for a reply that was cut off, or for the next reply.
    """

    MAX_OUTSTANDING_MARKS = 256  # a peer that never echoes cannot grow these sets without limit

    def __init__(
        self,
        ws: web.WebSocketResponse,
        serializer: MediaStreamSerializer,
        start: Start,
        call_control: CallControl | None,
        no_transfer_reason: str = "",
    ) -> None:
        self._ws = ws
        self._ser = serializer
        self._events = Silent()  # a phone line has no side channel for call events
        self.max_message_ms = serializer.max_message_ms
        self.supports_marks = serializer.supports_marks  # else "heard" by the send clock
        self.playback_lead_ms = serializer.playback_lead_ms
        self._start = start
        self._control = call_control
        self._no_transfer = no_transfer_reason
        self._sent_marks: set[str] = set()
        self._cleared_marks: set[str] = set()
        self._unknown_mark_logged = False
        self.transferred = False
        self._hung_up = False

    async def _send(self, out: Outbound) -> None:
        """A text message, a binary one (a carrier whose audio frames are binary: Vonage,
        Asterisk), or several in order (Asterisk's `START_MEDIA_BUFFERING` before the audio)."""
        if self._ws.closed:
            return
        try:
            for message in (out,) if isinstance(out, str | bytes) else out:
                if isinstance(message, bytes):
                    await self._ws.send_bytes(message)
                else:
                    await self._ws.send_str(message)
        except ConnectionError:
            pass  # the peer is gone; the reader sees the close and hangs up the call

    async def send_audio(self, frame: bytes) -> None:
        await self._send(self._ser.render_media(frame))

    async def send_event(self, event: Event) -> None:
        """Rendered like any transport's, by a renderer that has nothing to send on a phone
        line; the call's hooks still see what happened."""
        for frame in self._events.render(event):
            await self._send(frame)

    async def send_mark(self, name: str) -> None:
        if not self.supports_marks:
            return
        if len(self._sent_marks) < self.MAX_OUTSTANDING_MARKS:
            self._sent_marks.add(name)
        await self._send(self._ser.render_mark(name))

    async def clear(self) -> None:
        if len(self._cleared_marks) < self.MAX_OUTSTANDING_MARKS:
            self._cleared_marks |= self._sent_marks
        self._sent_marks.clear()
        await self._send(self._ser.render_clear())

    def acknowledge(self, name: str) -> bool:
        """An echoed mark: True if it acknowledges audio that was played, not cleared."""
        if name in self._cleared_marks:
            self._cleared_marks.discard(name)
            return False
        if name in self._sent_marks:
            self._sent_marks.discard(name)
            return True
        if not self._unknown_mark_logged:
            self._unknown_mark_logged = True
            log.warning(
                "%s stream: echoed mark %r was never sent; ignored", self._ser.name, name[:40]
            )
        return False

    async def transfer(self, target: str) -> bool:
        if self._control is None and await self._transfer_in_band(target):
            return True  # a message the far end acts on (FreeSWITCH's listener)
        if self._control is None:
            log.error(
                "call %s: cannot transfer to %s: %s",
                self._start.call_id,
                target,
                self._no_transfer,
            )
            return False
        try:
            await self._control.transfer(self._start, target)
        except TelephonyError as exc:
            log.error("call %s: transfer to %s failed: %s", self._start.call_id, target, exc)
            return False
        self.transferred = True
        return True

    async def _transfer_in_band(self, target: str) -> bool:
        try:
            message = self._ser.render_transfer(target)
        except TelephonyError as exc:
            self._no_transfer = str(exc)  # logged by `transfer`
            return False
        if message is not None and not self._ws.closed:
            await self._send(message)
            self.transferred = True
        return self.transferred

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """The call ends itself (the bot hung up, idle, an error): end it at the carrier too,
        when its call control can (`CallControl.hangup`; closing the media stream alone may not
        hang up the phone), unless it was transferred; then close the stream."""
        if self._ws.closed:
            return
        hangup = getattr(self._control, "hangup", None)
        if hangup is not None and not self.transferred and not self._hung_up:
            self._hung_up = True
            try:
                await hangup(self._start)
            except TelephonyError as exc:
                log.error("call %s: hang-up failed: %s", self._start.call_id, exc)
        last = self._ser.render_hangup()
        if last is not None and not self.transferred:
            await self._send(last)
        await self._ws.close(code=code, message=reason.encode()[:120])


class MediaStream:
    """One media WebSocket: the reader loop and the call it carries."""

    def __init__(
        self,
        runtime: Any,
        ws: web.WebSocketResponse,
        serializer: MediaStreamSerializer,
        call_control: CallControl | None,
        lag: LagHistogram | None = None,
        no_transfer_reason: str = "",
        admit: Callable[[Start], Awaitable[dict[str, str] | None]] | None = None,
        remote: str = "",
    ) -> None:
        self.runtime = runtime
        self._admit = admit  # Start → the variables the door vouches for; None: refused
        self._remote = remote
        self.ws = ws
        self.ser = serializer
        self.control = call_control
        self._no_transfer = no_transfer_reason
        self._lag = lag if lag is not None else LagHistogram()
        self._anchor: float | None = None
        self.call: Any = None
        self.io: TelephonyCallIO | None = None
        self._call_task: asyncio.Task[None] | None = None
        self._bad = 0
        self._unknown: set[str] = set()
        # messages/s and audio bytes/s, like every other connection (security.limits)
        self._format = AudioFormat(8000, "mulaw")
        self._limiter = ConnectionLimiter(runtime.config.security.limits, self._format)
        self._early_media = 0

    async def run(self) -> None:
        try:
            if await self._await_start():
                await self._read()
        finally:
            await self._end_call("remote")
        if self.ws.exception() is not None:
            log.warning("%s stream closed on error: %s", self.ser.name, self.ws.exception())

    async def _await_start(self) -> bool:
        """Read until `start`; True when the call is up."""
        loop = asyncio.get_running_loop()
        timeout = min(START_TIMEOUT_S, self.runtime.config.security.limits.idle_timeout_s)
        deadline = loop.time() + timeout
        while not self.ws.closed:
            try:
                msg = await self.ws.receive(timeout=max(0.0, deadline - loop.time()))
            except TimeoutError:
                log.warning("%s media stream sent no start within %ss", self.ser.name, timeout)
                await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"no start message")
                return False
            if msg.type in _CLOSED:
                return False
            event = await self._event(msg)
            if event is None:
                continue
            if isinstance(event, Start):
                return await self._start(event)
            if isinstance(event, Stop):
                return False
            if isinstance(event, Media | Dtmf | Mark):
                self._early_media += 1
                if self._early_media == 1:
                    log.error(
                        "%s media stream sent %s before start; ignored",
                        self.ser.name,
                        type(event).__name__.lower(),
                    )
        return False

    async def _start(self, start: Start) -> bool:
        trusted = {} if self._admit is None else await self._admit(start)
        if trusted is None:
            reason = "stream token missing, used or expired"
            audit("auth_failed", transport=self.ser.name, remote=self._remote, reason=reason)
            log.warning("%s stream %s refused: %s", self.ser.name, start.stream_id, reason)
            await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=reason.encode())
            return False
        subject = trusted.get("subject")
        limits = self.runtime.config.security.limits
        if subject is not None and calls_of(self.runtime.calls, subject) >= (
            limits.max_calls_per_subject
        ):
            log.warning(
                "%s call %s refused: too many calls for its subject", self.ser.name, start.call_id
            )
            await self.ws.close(
                code=WSCloseCode.TRY_AGAIN_LATER,
                message=b"too many concurrent calls for this subject",
            )
            return False
        trusted = dict(trusted)
        flow = trusted.pop(FLOW_VARIABLE, None)  # an outbound call's, from the minted token
        self.ser.bind(start)
        self.io = io = TelephonyCallIO(self.ws, self.ser, start, self.control, self._no_transfer)
        variables = {
            **drop_reserved(start.custom_parameters, self.ser.name),
            **trusted,
            "call_sid": start.call_id,
            "stream_sid": start.stream_id,
            "account_sid": start.account_id,
            "telephony_provider": self.ser.name,
        }
        try:
            self.call = await self.runtime.open_call(
                slot=f"{self.ser.name}:{start.call_id}" if start.call_id else None,  # webhook's
                transport=self.ser.name,
                io=io,
                audio_format=start.media_format.audio_format(),
                variables=variables,
                flow=flow,
            )
        except CapacityError as exc:
            log.warning("%s call %s refused: %s", self.ser.name, start.call_id, exc)
            await self.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"server at capacity")
            return False
        self._call_task = asyncio.create_task(self._run_call(), name=f"call-{start.call_id}")
        log.info("%s call %s started (stream %s)", self.ser.name, start.call_id, start.stream_id)
        return True

    async def _run_call(self) -> None:
        try:
            await self.runtime.run_call(self.call)
        except Exception:  # a bug in one call must not take the connection handler with it
            log.exception("%s call %s failed", self.ser.name, self.ser.stream_id)
        finally:
            # the call ended itself (hang-up, transfer, idle): the reader must stop too
            if self.call.end_reason == "remote":
                await self.ws.close()
            else:
                await self.io.close()

    async def _read(self) -> None:
        call = self.call
        while not self.ws.closed:
            msg = await self.ws.receive()
            if msg.type in _CLOSED:
                return  # with or without `stop`, the far end is gone
            event = await self._event(msg)
            if event is None:
                continue
            if isinstance(event, Media):
                if event.track != "outbound":
                    call.feed_audio(event.payload)
                if event.timestamp is not None:
                    self._measure_lag(event.timestamp)
            elif isinstance(event, Mark):
                if self.io.acknowledge(event.name):
                    call.mark_played(event.name)
            elif isinstance(event, Dtmf):
                call.dtmf(event.digit)
            elif isinstance(event, Stop):
                log.info("%s call %s: stop received", self.ser.name, self.ser.stream_id)
                call.hangup("remote")
                await self.ws.close()
            elif isinstance(event, Start):
                log.warning("%s stream %s: second start ignored", self.ser.name, event.stream_id)

    def _measure_lag(self, timestamp_ms: int) -> None:
        """How late this frame is read, against the earliest arrival its timestamp allows: the
        sum of network jitter and our own backlog, the figure that makes a caller sound choppy."""
        expected = timestamp_ms / 1000
        now = asyncio.get_running_loop().time()
        if self._anchor is None or now - expected < self._anchor:
            self._anchor = now - expected
        self._lag.add((now - expected - self._anchor) * 1000)

    async def _event(self, msg: Any) -> Any:
        """One data message → a serializer event, or None when there is nothing to do."""
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return None
        try:
            event = self.ser.parse(msg.data)
        except UnknownEvent as exc:
            if exc.event not in self._unknown and len(self._unknown) < 16:
                self._unknown.add(exc.event)
                log.info("%s stream: %s; ignored", self.ser.name, exc)
            event = None
        except UnsupportedFormat as exc:
            log.error("%s stream refused: %s", self.ser.name, exc)
            await self.ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=_reason(exc))
            return None
        except MalformedStart as exc:
            if self.call is None:  # nothing useful can follow a start that cannot start a call
                log.warning("%s stream refused: %s", self.ser.name, exc)
                await self.ws.close(code=WSCloseCode.INVALID_TEXT, message=_reason(exc))
                return None
            self._bad += 1  # a second start is ignored anyway
            event = None
        except MalformedMessage as exc:
            self._bad += 1
            if self._bad <= _LOGGED_BAD_MESSAGES:
                log.warning("%s stream: malformed message ignored: %s", self.ser.name, exc)
            if self._bad == MAX_BAD_MESSAGES:
                log.error("%s stream: %d malformed messages, closing", self.ser.name, self._bad)
                await self.ws.close(
                    code=WSCloseCode.POLICY_VIOLATION, message=b"too many malformed messages"
                )
                return None
            event = None
        if isinstance(event, Start):
            self._format = event.media_format.audio_format()
        size = len(event.payload) if isinstance(event, Media) else 0
        refusal = self._limiter.admit(size, self._format)
        if refusal is not None:
            log.warning("%s stream %s: rate limit: %s", self.ser.name, self.ser.stream_id, refusal)
            if self.call is not None:
                self.call.end_reason = "rate limited"
            await self.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"rate limit exceeded")
            return None
        return event if not isinstance(event, Connected) else None

    async def _end_call(self, reason: str) -> None:
        if self.call is not None:
            self.call.hangup(reason)
        if self._call_task is not None:
            await self._call_task
        if not self.ws.closed:
            await self.ws.close()
