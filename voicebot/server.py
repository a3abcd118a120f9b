"""The aiohttp application: routes to transports, REST, health and metrics.

A thin shell: each route hands over to the runtime or a transport module.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from . import security
from .appkeys import CHATS, CONNECTIONS, RUNTIME, SESSIONS, SUBJECT, TRIMMER
from .dialogue import Say, UserInput
from .memory import MemoryTrimmer
from .providers import ProviderError
from .runtime import Runtime
from .sentences import join_pieces
from .sessions import SessionStore
from .transports.browser import voice_ws

log = logging.getLogger("voicebot.server")

MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_CHAT_SESSIONS = 10_000


def create_app(runtime: Runtime) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[RUNTIME] = runtime
    sessions = runtime.config.security.sessions
    app[SESSIONS] = SessionStore(
        ttl_s=sessions.ttl_s,
        single_use=sessions.single_use,
        resume_grace_s=sessions.resume_grace_s,
    )
    app[CONNECTIONS] = {}
    app[CHATS] = {}
    app[TRIMMER] = MemoryTrimmer(runtime, runtime.config.server.malloc_trim_s)
    app.router.add_get("/", index)
    app.router.add_get("/ws/voice", voice_ws)
    app.router.add_post("/api/v1/sessions", create_session)
    app.router.add_get("/health", health)
    app.router.add_get("/calls", calls)
    app.router.add_get("/ws/stats", ws_stats)
    app.router.add_post("/api/chat", chat)
    app.router.add_post("/api/transcribe", transcribe)
    app.router.add_get("/metrics", metrics)
    transports = [add_routes(app, runtime) for add_routes in _transport_routes()]
    security.install(app, runtime)

    async def on_startup(app: web.Application) -> None:
        await runtime.start()
        for transport in transports:  # once up: a start that fails says only why
            transport.log_start_up()
        app[TRIMMER].start()

    async def on_shutdown(app: web.Application) -> None:
        await runtime.drain(runtime.config.server.drain_grace_s)

    async def on_cleanup(app: web.Application) -> None:
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
        from .transports.telephony import add_routes
    except ImportError:
        return []
    return [add_routes]


def _json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"type": "error", "code": code, "message": message}, status=status)


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(
            text='{"type":"error","code":"invalid_json","message":"body is not valid JSON"}',
            content_type="application/json",
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text='{"type":"error","code":"invalid_body","message":"body must be a JSON object"}',
            content_type="application/json",
        )
    return body


async def create_session(request: web.Request) -> web.Response:
    body = await _json_body(request)
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        return _json_error(400, "invalid_body", "`metadata` must be an object")
    session = request.app[SESSIONS].create(
        namespace=str(body.get("namespace", "")),
        flow=body.get("flow"),
        metadata=metadata,
        subject=request.get(SUBJECT),
    )
    scheme = "wss" if request.secure else "ws"
    return web.json_response(
        {
            "session_id": session.id,
            "expires_at": session.expires_at,
            "ws_url": f"{scheme}://{request.host}/ws/voice?session_id={session.id}",
        }
    )


async def health(request: web.Request) -> web.Response:
    return web.json_response(request.app[RUNTIME].health())


async def calls(request: web.Request) -> web.Response:
    runtime: Runtime = request.app[RUNTIME]
    return web.json_response(
        {
            "active_calls": len(runtime.calls),
            "max_calls": runtime.config.security.limits.max_calls,
            "calls": [call.info() for call in runtime.calls.values()],
        }
    )


async def ws_stats(request: web.Request) -> web.Response:
    connections = request.app[CONNECTIONS]
    return web.json_response(
        {"active_connections": len(connections), "connection_ids": [c[:8] for c in connections]}
    )


async def chat(request: web.Request) -> web.Response:
    """The dialogue on text alone: the same flows, no audio."""
    from .dialogue import Hangup

    runtime: Runtime = request.app[RUNTIME]
    body = await _json_body(request)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        return _json_error(400, "invalid_text", "`text` must be a non-empty string")
    if len(text) > runtime.config.security.limits.max_text_chars:
        return _json_error(413, "text_too_long", "text is over the configured limit")
    chats: dict[str, Any] = request.app[CHATS]
    session_id = body.get("session_id")
    dialogue = chats.get(session_id) if isinstance(session_id, str) else None
    greeting: list[tuple[str, bool]] = []
    if dialogue is None:
        session_id = request.app[SESSIONS].create(namespace="chat").id
        dialogue = runtime.new_dialogue(session_id, {"channel": "chat"})
        if len(chats) >= MAX_CHAT_SESSIONS:
            chats.pop(next(iter(chats)))
        chats[session_id] = dialogue
        greeting = [(o.text, o.delta) async for o in dialogue.start() if isinstance(o, Say)]
    reply: list[tuple[str, bool]] = []
    ended = False
    try:
        async for out in dialogue.handle(UserInput("text", text=text.strip())):
            if isinstance(out, Say):
                reply.append((out.text, out.delta))
            elif isinstance(out, Hangup):
                ended = True
    except ProviderError as exc:
        return _json_error(502, "provider_failed", str(exc))
    if ended:
        chats.pop(session_id, None)
    return web.json_response(
        {
            "session_id": session_id,
            "greeting": join_pieces(greeting) or None,
            "text": join_pieces(reply),
            "ended": ended,
        }
    )


async def transcribe(request: web.Request) -> web.Response:
    """Audio (raw PCM16 body, or JSON `{"audio": base64}`) at `sample_rate` → text."""
    from .audio import InboundAudio

    runtime: Runtime = request.app[RUNTIME]
    try:
        rate = int(request.query.get("sample_rate", "16000"))
        encoding = request.query.get("encoding", "pcm_s16le")
        if request.content_type == "application/json":
            body = await _json_body(request)
            data = base64.b64decode(body.get("audio", ""), validate=True)
        else:
            data = await request.read()
        frames = InboundAudio(rate, encoding, runtime.config.pipeline.sample_rate).push(data)
    except (ValueError, binascii.Error) as exc:
        return _json_error(400, "invalid_audio", str(exc))
    if not frames:
        return _json_error(400, "invalid_audio", "no audio in the request")
    stream = runtime.providers["stt"].stream(runtime.config.pipeline.sample_rate)
    try:
        await stream.send(b"".join(frames))
        result = await stream.finalize()
    except ProviderError as exc:
        return _json_error(502, "stt_failed", str(exc))
    finally:
        await stream.aclose()
    return web.json_response({"text": result.text, "confidence": result.confidence})


async def metrics(request: web.Request) -> web.Response:
    runtime: Runtime = request.app[RUNTIME]
    lines = [
        "# TYPE voicebot_active_calls gauge",
        f"voicebot_active_calls {len(runtime.calls)}",
        "# TYPE voicebot_calls_total counter",
        f"voicebot_calls_total {runtime.calls_total}",
        "# TYPE voicebot_uptime_seconds gauge",
        f"voicebot_uptime_seconds {time.time() - runtime.started_at:.1f}",
        "# TYPE voicebot_event_loop_lag_ms gauge",
        f'voicebot_event_loop_lag_ms{{quantile="0.5"}} {runtime.lag.percentile(0.5)}',
        f'voicebot_event_loop_lag_ms{{quantile="0.99"}} {runtime.lag.percentile(0.99)}',
        "# TYPE voicebot_inference_queue gauge",
        f"voicebot_inference_queue {runtime.workers.stats()['queued']}",
    ]
    v2v = sorted(t["voice_to_voice_ms"] for t in runtime.turns if t.get("voice_to_voice_ms"))
    if v2v:
        lines.append("# TYPE voicebot_voice_to_voice_ms gauge")
        for q in (0.5, 0.95):
            lines.append(
                f'voicebot_voice_to_voice_ms{{quantile="{q}"}} '
                f"{v2v[min(len(v2v) - 1, int(q * len(v2v)))]}"
            )
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")
