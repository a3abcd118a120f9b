"""The aiohttp application: routes to transports, REST, health and metrics.

A thin shell: each route hands over to the runtime or a transport module.
"""

from __future__ import annotations

import base64
import logging
import re
from pathlib import Path
from typing import Any

from aiohttp import web

from ..dialogue import Say, UserInput
from ..dialogue.sentences import join_pieces
from ..memory import MemoryTrimmer
from ..providers import ProviderError
from ..runtime import Runtime
from . import cluster_http, security
from .appkeys import (
    CHATS,
    CLUSTER,
    CONNECTIONS,
    RUNTIME,
    SESSION_LIMIT,
    SESSIONS,
    SUBJECT,
    TRIMMER,
)
from .browser import voice_ws
from .limits import ClientRateLimit, client_key
from .outbound import add_routes as add_outbound_routes
from .rest import (
    RestError,
    bounded_str,
    check_metadata,
    json_error,
    json_object,
    read_body,
    rest_errors,
    too_many,
    voice_url,
)
from .sessions import Session, SessionsFull, SessionStore
from .siblings import local_calls
from .tcp_door import TCP_DOORS, TcpDoors

log = logging.getLogger("voicebot.server")

MAX_BODY_BYTES = 10 * 1024 * 1024
#: A conversation id a client may choose for `/api/chat`.
CLIENT_SESSION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def create_app(runtime: Runtime) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[RUNTIME] = runtime
    sessions = runtime.config.security.sessions
    chats: dict[str, Any] = {}  # chat session id → its dialogue; forgotten with the session
    app[SESSIONS] = SessionStore(
        ttl_s=sessions.ttl_s,
        single_use=sessions.single_use,
        resume_grace_s=sessions.resume_grace_s,
        max_sessions=sessions.max_sessions,
        max_total_bytes=sessions.max_total_bytes,
        on_forget=lambda session_id: chats.pop(session_id, None),
    )
    app[SESSION_LIMIT] = ClientRateLimit(sessions.create_per_minute, sessions.create_burst)
    app[CONNECTIONS] = {}
    app[CHATS] = chats
    app[TRIMMER] = MemoryTrimmer(runtime, runtime.config.server.malloc_trim_s)
    app.router.add_get("/", index)
    app.router.add_get("/ws/voice", voice_ws)
    for path in runtime.config.browser.paths:  # clients hard-coded to another server's path
        app.router.add_get(path, voice_ws)
    app.router.add_post("/api/v1/sessions", create_session)
    app.router.add_get("/health", health)
    app.router.add_get("/calls", calls)
    app.router.add_get("/ws/stats", ws_stats)
    app.router.add_post("/api/chat", chat)
    app.router.add_post("/api/transcribe", transcribe)
    app.router.add_get("/metrics", metrics)
    cluster_http.add_routes(app)
    transports = [add_routes(app, runtime) for add_routes in _transport_routes()]
    app[TCP_DOORS] = tcp_doors = TcpDoors(runtime)
    if transports:
        add_outbound_routes(app)  # calls placed through a carrier: needs the telephony routes
    security.install(app, runtime)
    app.middlewares.append(rest_errors)  # innermost: CORS headers still reach its answers

    async def on_startup(app: web.Application) -> None:
        await runtime.start()
        for transport in transports:  # once up: a start that fails says only why
            transport.log_start_up()
        app[TRIMMER].start()
        await tcp_doors.start()

    async def on_shutdown(app: web.Application) -> None:
        await runtime.drain(runtime.config.server.drain_grace_s)

    async def on_cleanup(app: web.Application) -> None:
        await tcp_doors.stop()
        await app[TRIMMER].stop()
        await runtime.stop()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app


STATIC = Path(__file__).parent / "static"


async def index(request: web.Request) -> web.FileResponse:
    """A page to talk to the bot from a browser: microphone in, speech out, a transcript."""
    return web.FileResponse(STATIC / "index.html")


def _transport_routes() -> list[Any]:
    try:
        from .telephony import add_routes
    except ImportError:
        return []
    return [add_routes]


def _take_creation_token(request: web.Request) -> None:
    """Session creation is rate-limited per client (`security.sessions.create_per_minute`)."""
    client = client_key(request.remote, request.get(SUBJECT))
    wait = request.app[SESSION_LIMIT].retry_after(client)
    if wait:
        raise too_many("rate_limited", "too many new sessions from this client; slow down", wait)


def _new_session(
    request: web.Request,
    *,
    namespace: str = "",
    flow: str | None = None,
    session_id: str | None = None,
) -> Session:
    """A session for this client within the store's bounds (the caller took a creation token)."""
    try:
        return request.app[SESSIONS].create(
            namespace=namespace, flow=flow, subject=request.get(SUBJECT), session_id=session_id
        )
    except SessionsFull as exc:
        raise too_many("sessions_full", str(exc), exc.retry_after, status=503) from None


async def create_session(request: web.Request) -> web.Response:
    runtime: Runtime = request.app[RUNTIME]
    max_bytes = runtime.config.security.sessions.max_field_bytes
    _take_creation_token(request)  # every attempt counts, so a flood is cut before parsing
    body = await json_object(request, max_bytes=8 * max_bytes + 4096)  # fields, JSON escapes
    namespace = bounded_str(body, "namespace", max_bytes) or ""
    flow = bounded_str(body, "flow", max_bytes)
    if flow is not None and not runtime.knows_flow(flow):
        raise RestError(400, "unknown_flow", "`flow` is not the name of a flow of this server")
    check_metadata(body, max_bytes)
    session = _new_session(request, namespace=namespace, flow=flow)
    await runtime.cluster.session_created(session)
    return web.json_response(
        {
            "session_id": session.id,
            "expires_at": session.expires_at,
            "ws_url": voice_url(request, runtime.config.server.public_url, session.id),
        }
    )


async def health(request: web.Request) -> web.Response:
    body = request.app[RUNTIME].health()
    cluster = request.app.get(CLUSTER)  # `run --workers N`: the whole server, not this worker
    return web.json_response(body if cluster is None else await cluster.health(body))


async def calls(request: web.Request) -> web.Response:
    if request.query.get("scope") == "cluster":
        return await cluster_http.fleet_calls(request)
    body = local_calls(request.app[RUNTIME])
    cluster = request.app.get(CLUSTER)  # `run --workers N`: every worker of this server
    return web.json_response(body if cluster is None else await cluster.calls(body))


async def ws_stats(request: web.Request) -> web.Response:
    connections = request.app[CONNECTIONS]
    return web.json_response(
        {"active_connections": len(connections), "connection_ids": [c[:8] for c in connections]}
    )


async def chat(request: web.Request) -> web.Response:
    """The dialogue on text alone: the same flows, no audio. A `session_id` the client chose
    (its own conversation id) is adopted the first time, bound to the caller's subject, so a
    client that never reads ours keeps its context."""
    from ..dialogue import Hangup, IntentEvent

    runtime: Runtime = request.app[RUNTIME]
    body = await json_object(request)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        return json_error(400, "invalid_text", "`text` must be a non-empty string")
    if len(text) > runtime.config.security.limits.max_text_chars:
        return json_error(413, "text_too_long", "text is over the configured limit")
    chats: dict[str, Any] = request.app[CHATS]
    session_id = body.get("session_id")
    if session_id is not None and not (
        isinstance(session_id, str) and CLIENT_SESSION_ID.fullmatch(session_id)
    ):
        return json_error(400, "invalid_body", "`session_id` must be 1-128 of A-Z a-z 0-9 . _ : -")
    dialogue, adopt = None, session_id
    if session_id is not None:
        session = request.app[SESSIONS].get(session_id)
        if session is not None:
            # another subject's conversation is not theirs to continue: they get their own
            adopt = None
            if session.subject == request.get(SUBJECT):
                dialogue, adopt = chats.get(session_id), session_id
    greeting: list[tuple[str, bool]] = []
    if dialogue is None:
        if adopt is None or request.app[SESSIONS].get(adopt) is None:
            _take_creation_token(request)
            session_id = _new_session(request, namespace="chat", session_id=adopt).id
        dialogue = runtime.new_dialogue(session_id, {"channel": "chat"})
        chats[session_id] = dialogue
        greeting = [(o.text, o.delta) async for o in dialogue.start() if isinstance(o, Say)]
    reply: list[tuple[str, bool]] = []
    ended = False
    intent: IntentEvent | None = None
    try:
        async for out in dialogue.handle(UserInput("text", text=text.strip())):
            if isinstance(out, Say):
                reply.append((out.text, out.delta))
            elif isinstance(out, IntentEvent):
                intent = out
            elif isinstance(out, Hangup):
                ended = True
    except ProviderError as exc:
        return json_error(502, "provider_failed", str(exc))
    if ended:
        chats.pop(session_id, None)
    return web.json_response(
        {
            "session_id": session_id,
            "greeting": join_pieces(greeting) or None,
            "text": join_pieces(reply),
            "intent": intent.intent if intent and intent.intent else "unknown",
            "confidence": intent.confidence if intent else 0.0,
            "ended": ended,
        }
    )


async def transcribe(request: web.Request) -> web.Response:
    """Audio (raw body, or JSON `{"audio": base64}`) at `sample_rate` → text.

    Bounded like a call's whole utterance: at most `pipeline.max_utterance_ms` once decoded
    (charged before decoding, so an Opus bomb costs no more than that), Opus decoded on the worker
    pool, and the recogniser held to the STT deadline."""
    from ..audio import AudioLimitError, InboundAudio, UnsupportedAudio
    from ..audio.budget import AudioBudget
    from ..audio.sniff import compressed
    from ..providers.deadlines import BoundedSTTStream

    runtime: Runtime = request.app[RUNTIME]
    pipeline = runtime.config.pipeline
    cap_s = pipeline.max_utterance_ms / 1000
    meter = AudioBudget(runtime.config.security.limits, cap_s).meter(cap_s, streamed=False)
    try:
        rate = int(request.query.get("sample_rate", "16000"))
        encoding = request.query.get("encoding", "pcm_s16le")
        if request.content_type == "application/json":
            audio = (await json_object(request)).get("audio", "")
            if not isinstance(audio, str):
                return json_error(400, "invalid_audio", "`audio` must be a base64 string")
            data = base64.b64decode(audio, validate=True)
        else:
            data = await read_body(request)
        conv = InboundAudio(rate, encoding, pipeline.sample_rate)
        if compressed(data, encoding):
            frames = await runtime.workers.run(conv.push, data, meter)
        else:
            frames = conv.push(data, meter)
    except AudioLimitError as exc:
        return json_error(413, "audio_too_large", str(exc))
    except UnsupportedAudio as exc:
        return json_error(415, "unsupported_audio", f"{exc} (detected: {exc.detected})")
    except ValueError as exc:  # binascii.Error and AudioFormatError are ValueErrors
        return json_error(400, "invalid_audio", str(exc))
    except ProviderError as exc:  # the worker pool is full
        return json_error(503, "overloaded", str(exc))
    if not frames:
        return json_error(400, "invalid_audio", "no audio in the request")
    provider = runtime.providers["stt"]
    stream = BoundedSTTStream(
        lambda: provider.stream(pipeline.sample_rate),
        runtime.deadlines["stt"],
        provider=provider.name,
        endpointing=provider.endpointing,
    )
    try:
        await stream.send(b"".join(frames))
        stream.turn_ended()
        result = await stream.finalize()
    except ProviderError as exc:
        return json_error(502, "stt_failed", str(exc))
    finally:
        await stream.aclose()
    return web.json_response({"text": result.text, "confidence": result.confidence})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text from `prometheus-client` (every worker's, in a multi-worker server)."""
    body, content_type = request.app[RUNTIME].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})
