"""`/ws/voice` (and `browser.paths`): browsers and generic clients.

A thin shell over a dialect (`voicebot.protocol`): client text goes through `dialect.parse`, and
whatever the dialect renders of the call's events and audio is sent as it is. What is I/O stays
here: the socket, its limits, the heartbeat, the call's life.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, cast

from aiohttp import WSMsgType, web

from ..audio import AudioFormatError
from ..audio.encoders import (
    OutputEncoder,
    audio_config,
    check_output,
    default_output,
    new_encoder,
)
from ..call import Call
from ..protocol import DIALECTS, Dialect, Frame, VoicebotDialect, make_dialect
from ..protocol import events as ev
from ..protocol.commands import Command, ProtocolError, parse_query_format
from ..protocol.dialect import voicebot_object
from ..providers import AudioFormat
from ..records.audit import audit
from ..runtime import CapacityError, Runtime
from .appkeys import AUTH, CONNECTIONS, RUNTIME, SESSIONS
from .auth import AuthBusy, Authenticator, AuthError, authenticate_ws, chosen_subprotocols
from .guard import ConnectionGuard
from .limits import ConnectionLimiter, calls_of
from .sessions import Session

log = logging.getLogger("voicebot.browser")

MAX_WRITE_BUFFER = 2 * 1024 * 1024  # a client that stops reading is dropped past this

# close codes (see protocols.md §1)
CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_LATER = 1013
CLOSE_AUTH = 4001
CLOSE_NO_SESSION = 4004
CLOSE_TIMEOUT = 4008


class BrowserIO:
    """The call's view of one `/ws/voice` socket."""

    supports_marks = False

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self._transport = request.transport
        self.call: Call | None = None
        self.output = "pcm"
        self._encoder: OutputEncoder | None = None
        self._cleared = asyncio.Event()  # set by a barge-in: a file held back is not sent
        self.dialect: Dialect = VoicebotDialect(call_id="", session_id=None, max_text_chars=0)

    def set_output(self, output: str, sample_rate: int) -> None:
        """Replies from now on in `output` (`encoders.OUTPUTS`) at `sample_rate`."""
        self.output = output
        self._encoder = new_encoder(output, sample_rate)

    def _writable(self) -> bool:
        if self.ws.closed:
            return False
        if (
            self._transport is not None
            and self._transport.get_write_buffer_size() > MAX_WRITE_BUFFER
        ):
            # the socket cannot take a close frame either: drop the connection, end the call
            log.warning("client is not reading; dropping the connection")
            self._transport.abort()
            if self.call is not None:
                self.call.hangup("client is not reading")
            return False
        return True

    async def send(self, frames: list[Frame]) -> None:
        for frame in frames:
            if not self._writable():
                return
            with contextlib.suppress(ConnectionError):
                if isinstance(frame, bytes):
                    await self.ws.send_bytes(frame)
                else:
                    await self.ws.send_str(frame)

    async def send_audio(self, frame: bytes) -> None:
        if self.call is None:
            return
        if self._encoder is not None:
            frame = self._encoder.encode(frame)
        if frame:
            await self.send(self.dialect.audio(frame, reply_audio(self.call.format)))

    async def send_event(self, event: ev.Event) -> None:
        await self.send(self.dialect.render(event))

    async def send_mark(self, name: str) -> None:
        """The end of a reply segment. Browsers have no playback acknowledgement (the call uses
        its playback clock); a `wav` client gets the segment's file now."""
        if self._encoder is not None:
            data = self._encoder.end_segment()
            cleared = self._cleared
            hold = self._encoder.hold_s(data, asyncio.get_running_loop().time()) if data else 0
            if hold > 0:  # the previous file is still playing; a barge-in ends the wait
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(cleared.wait(), hold)
            if data and not cleared.is_set() and self._writable():
                with contextlib.suppress(ConnectionError):
                    await self.ws.send_bytes(data)

    async def clear(self) -> None:
        """The `interrupted` status tells the client to drop what it has buffered."""
        self._cleared.set()
        self._cleared = asyncio.Event()
        if self._encoder is not None:
            self._encoder.clear()

    async def transfer(self, target: str) -> bool:
        return False

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError):
                await self.ws.close(code=code, message=reason.encode()[:120])
        if self.call is not None:
            self.call.hangup(reason or "closed")


async def refuse(
    ws: web.WebSocketResponse, code: int, reason: str, error: str = ""
) -> web.WebSocketResponse:
    if error:
        with contextlib.suppress(ConnectionError):
            await ws.send_str(json.dumps(voicebot_object(ev.Error(error, reason))))
    await ws.close(code=code, message=reason.encode()[:120])


async def voice_ws(request: web.Request) -> web.StreamResponse:
    """One connection = one call. A bug of ours closes this socket with 1011, never the server."""
    config = request.app[RUNTIME].config
    limits = config.security.limits
    # no permessage-deflate: audio does not compress and each compressor costs ~256 KB per call
    ws = web.WebSocketResponse(
        heartbeat=limits.heartbeat_s,
        # binary frames are held to max_frame_bytes in `_receive`; JSON (base64 audio) to this
        max_msg_size=max(limits.max_frame_bytes, config.browser.max_message_bytes),
        compress=False,
        protocols=chosen_subprotocols(request),  # a token offered as a subprotocol
    )
    await ws.prepare(request)
    try:
        await _serve_call(request, ws)
    except Exception:
        log.exception("internal error on /ws/voice")
        with contextlib.suppress(ConnectionError):
            await ws.close(code=CLOSE_INTERNAL, message=b"internal error")
    finally:
        release_heartbeat(ws)
    return ws


async def _serve_call(request: web.Request, ws: web.WebSocketResponse) -> None:
    runtime: Runtime = request.app[RUNTIME]
    limits = runtime.config.security.limits
    authn: Authenticator = request.app[AUTH]
    try:
        principal = await authenticate_ws(request, ws, authn, limits.max_calls)
    except AuthError as exc:
        audit("auth_failed", transport="websocket", remote=request.remote, reason=str(exc))
        code = CLOSE_TRY_LATER if isinstance(exc, AuthBusy) else CLOSE_AUTH
        return await refuse(ws, code, str(exc), "auth_failed")
    subject = principal.subject if principal else None
    browser = runtime.config.browser
    try:
        rate, encoding = parse_query_format(dict(request.query), browser.sample_rate)
        output = request.query.get("output") or default_output(runtime.config)
        check_output(output, rate, encoding)
    except ProtocolError as exc:
        return await refuse(ws, CLOSE_UNSUPPORTED, str(exc), exc.code)
    except AudioFormatError as exc:
        return await refuse(ws, CLOSE_UNSUPPORTED, str(exc), "invalid_config")
    dialect_name = request.query.get("dialect", browser.dialect)
    if dialect_name not in DIALECTS:
        names = ", ".join(DIALECTS)
        return await refuse(
            ws, CLOSE_UNSUPPORTED, f"dialect must be one of {names}", "invalid_config"
        )
    session_id = request.query.get("session_id")
    session = None
    if session_id:
        session = await runtime.cluster.fetch_session(request.app[SESSIONS], session_id)
        if session is None:
            return await refuse(ws, CLOSE_NO_SESSION, "session not found")
        if session.subject is not None and session.subject != subject:
            return await refuse(ws, CLOSE_AUTH, "session belongs to another subject", "auth_failed")
    if subject is not None and calls_of(runtime.calls, subject) >= limits.max_calls_per_subject:
        return await refuse(ws, CLOSE_TRY_LATER, "too many concurrent calls for this subject")
    resume = None
    if session is not None:
        resume = _take_over(session, request.app[SESSIONS].resume_grace_s)
    io = BrowserIO(ws, request)
    variables = {"namespace": request.query.get("namespace", session.namespace if session else "")}
    if subject is not None:
        variables["subject"] = subject
    try:
        call = await runtime.open_call(
            transport="websocket",
            io=io,
            audio_format=AudioFormat(rate, encoding),
            variables=variables,
            session_id=session_id,
            flow=session.flow if session else None,
            resume=resume,
        )
    except CapacityError as exc:
        return await refuse(ws, CLOSE_TRY_LATER, str(exc))
    except AudioFormatError as exc:  # e.g. webm without the optional Opus decoder
        return await refuse(ws, CLOSE_UNSUPPORTED, str(exc), "unsupported_encoding")
    io.call = call
    io.dialect = make_dialect(
        dialect_name, call_id=call.id, session_id=session_id, max_text_chars=limits.max_text_chars
    )
    # the envelope dialect sends its own WAV per turn inside JSON: no binary encoder
    io.set_output(output if io.dialect.binary_audio else "pcm", rate)
    if session is not None:
        session.active_call = call
    request.app[CONNECTIONS][call.id] = ws
    await io.send_event(
        ev.Connected(call.id, session_id, call.resumed, announced(rate, encoding, io.output))
    )
    life = asyncio.ensure_future(runtime.run_call(call))
    limiter = ConnectionLimiter(limits, call.format, browser.max_message_bytes)
    guard = ConnectionGuard(authn, principal, limiter)
    sizes = (limits.max_frame_bytes, browser.max_message_bytes)
    receiver = asyncio.ensure_future(_receive(ws, call, io, sizes, guard))
    beat = _heartbeat(io, browser.heartbeat_s) if browser.heartbeat_s > 0 else None
    try:
        # whichever ends first ends the other: the client leaving, or the call ending on our
        # side (hang-up, a reconnect taking the session over) while the client says nothing
        await asyncio.wait({life, receiver}, return_when=asyncio.FIRST_COMPLETED)
        if receiver.done():
            receiver.result()  # a bug in message handling surfaces as close 1011
    finally:
        call.hangup(call.end_reason or "client disconnected")
        if not receiver.done():
            await io.close(CLOSE_NORMAL, call.end_reason)
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)
        if beat is not None:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
        await life
        if session is not None and session.active_call is call:
            request.app[SESSIONS].call_ended(session, call.snapshot(), call.clean_end)
        request.app[CONNECTIONS].pop(call.id, None)
        if not ws.closed:
            await ws.close()


def _take_over(session: Session, grace_s: float) -> dict[str, Any] | None:
    """A reconnect with a session id: end the session's old connection if it is still open
    (the client moved on; the server just had not noticed yet) and return the state to resume."""
    old = session.active_call
    if old is not None and not old.ended:
        snapshot = old.snapshot()
        old.end_reason = "resumed on a new connection"
        old.hangup(old.end_reason)
        session.active_call = None
        return snapshot
    return session.resumable(grace_s)


def release_heartbeat(ws: web.WebSocketResponse) -> None:
    """aiohttp re-arms the heartbeat timer when the peer's close frame arrives after ours, which
    keeps every closed socket (and its call) in memory for `heartbeat_s`; cancel it when done."""
    with contextlib.suppress(AttributeError):
        ws._cancel_heartbeat()


def announced(sample_rate: int, encoding: str, output: str) -> ev.AudioConfig:
    """The `audio_config` a client is told: what it sends and what it receives."""
    return ev.AudioConfig(**audio_config(sample_rate, encoding, output))  # type: ignore[arg-type]


def reply_audio(fmt: AudioFormat) -> ev.AudioConfig:
    """The format of the bot's frames: the client's, except that a WebM client gets PCM16."""
    encoding = "pcm_s16le" if fmt.encoding == "webm" else fmt.encoding
    return ev.AudioConfig(fmt.sample_rate, encoding)


def _heartbeat(io: BrowserIO, every_s: float) -> asyncio.Task[None]:
    """`browser.heartbeat_s`: a JSON keep-alive for clients that expect one (aiohttp's
    WebSocket pings are below what a browser's JavaScript sees)."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every_s)
            await io.send_event(ev.Heartbeat())

    return asyncio.ensure_future(beat())


async def _receive(
    ws: web.WebSocketResponse,
    call: Call,
    io: BrowserIO,
    sizes: tuple[int, int],
    guard: ConnectionGuard,
) -> None:
    max_binary, max_json = sizes
    async for msg in ws:
        if call.ended:
            return
        if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT):
            text = msg.type == WSMsgType.TEXT
            if len(msg.data) > (max_json if text else max_binary):
                log.info("call %s: message over the size limit", call.id)
                call.end_reason = "message too large"
                await io.close(CLOSE_TOO_BIG, "message too big")
                return
            refusal = guard.limiter.admit(len(msg.data), call.format, text)
            if refusal is not None:
                log.info("call %s: rate limit: %s", call.id, refusal)
                call.end_reason = "rate limited"
                await io.send_event(ev.Error("rate_limited", refusal))
                await io.close(CLOSE_POLICY, "rate limit exceeded")
                return
        if msg.type == WSMsgType.BINARY:
            call.feed_audio(msg.data)
            # buffered messages are read without yielding: let other calls run between two
            await asyncio.sleep(0)
        elif msg.type == WSMsgType.TEXT:
            try:
                command = io.dialect.parse(cast(str, msg.data))
            except ProtocolError as exc:
                call.touch()
                await io.send(io.dialect.error(exc))
                continue
            await io.send(io.dialect.accepted(command))
            if await _dispatch(command, call, io, guard):
                return
        elif msg.type == WSMsgType.ERROR:
            exc = ws.exception()
            log.info("call %s: websocket error: %s", call.id, exc)
            return
    if ws.close_code == CLOSE_TOO_BIG:
        log.info("call %s: frame over the size limit", call.id)


async def _dispatch(cmd: Command, call: Call, io: BrowserIO, guard: ConnectionGuard) -> bool:
    """Act on one control message; True when the call is over."""
    if cmd.kind == "ping":
        call.touch()
        await io.send_event(ev.Pong())
    elif cmd.kind == "end_turn":
        call.end_turn()
    elif cmd.kind == "interrupt":
        call.interrupt()
    elif cmd.kind == "text":
        call.text(cmd.text)
    elif cmd.kind == "typing":
        call.typing()
    elif cmd.kind == "audio":
        await call.whole_utterance(cmd.audio)
    elif cmd.kind == "dtmf":
        call.dtmf(cmd.digit)
    elif cmd.kind == "pause":
        call.pause()
    elif cmd.kind == "resume":
        call.resume()
    elif cmd.kind == "reset":
        call.reset()
    elif cmd.kind == "config":
        fmt = AudioFormat(
            cmd.sample_rate or call.format.sample_rate, cmd.encoding or call.format.encoding
        )
        output = cmd.output or io.output
        try:
            check_output(output, fmt.sample_rate, fmt.encoding)
            rerated = fmt.sample_rate != call.format.sample_rate
            call.set_format(fmt)
            if output != io.output or rerated:
                io.set_output(output, fmt.sample_rate)
        except AudioFormatError as exc:
            await io.send_event(ev.Error("invalid_config", str(exc)))
            return False
        fmt_now = announced(fmt.sample_rate, fmt.encoding, io.output)
        await io.send_event(ev.Status(call.state, call.id, audio_config=fmt_now))
    elif cmd.kind == "auth":
        call.touch()
        await guard.reauth(cmd.token, io)
    elif cmd.kind == "end_call":
        call.end_reason = "client ended the call"
        call.clean_end = True
        await io.send_event(ev.Status("ended", call.id, reason=call.end_reason))
        await io.close(CLOSE_NORMAL, "call ended")
        return True
    return False
