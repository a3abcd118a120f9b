"""Wires authentication, CORS, the audit log and storage into the aiohttp app.

`create_app` calls `install` once; everything security-related hangs off it, so the server module
stays a list of routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..config.options import ConfigError, Problem
from ..records.audit import AuditLog
from ..records.storage import Storage, StorageError, cipher, database_path
from . import redact
from .appkeys import AUTH, RUNTIME, SESSIONS, STORAGE, SUBJECT
from .auth import Authenticator, AuthError, token_from_headers
from .rest import json_error

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# REST routes that act on calls or cost money; /health and /metrics stay open for probes
PROTECTED_PREFIXES = ("/api/", "/calls")
PROTECTED_PATHS = frozenset({"/ws/stats", "/telephony/stats"})
CORS_METHODS = "GET, POST, DELETE, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type, X-API-Key"


def install(app: web.Application, runtime: Any) -> None:
    cfg = runtime.config
    try:
        app[AUTH] = Authenticator(cfg.security.auth, cfg.resolve)
    except (ValueError, OSError) as exc:
        raise _config_error(cfg, "security.auth", exc) from None
    redact.install()
    app.middlewares.append(cors_middleware(frozenset(cfg.security.cors_origins)))
    app.middlewares.append(auth_middleware)
    runtime.pm.register(AuditLog(), "voicebot.audit")
    app[STORAGE] = None
    if cfg.storage.url:
        try:
            storage = Storage(cfg.storage, cfg.resolve, runtime.hook)
        except StorageError as exc:
            raise _config_error(cfg, "storage", exc) from None
        runtime.pm.register(storage, "voicebot.storage")
        app[STORAGE] = storage

        async def start_storage(app: web.Application) -> None:
            await storage.start()

        async def stop_storage(app: web.Application) -> None:
            await storage.stop()

        app.on_startup.append(start_storage)
        app.on_cleanup.append(stop_storage)
    app.router.add_delete("/api/v1/sessions/{session_id}", delete_session)


def check_config(cfg: Any) -> list[Problem]:
    """What `install` would refuse, found by `voicebot check` without starting anything: key
    files that do not load, a storage URL or encryption key that does not work."""
    problems: list[Problem] = []
    try:
        Authenticator(cfg.security.auth, cfg.resolve)
    except (ValueError, OSError) as exc:
        problems += _config_error(cfg, "security.auth", exc).problems
    if cfg.storage.url:
        try:
            database_path(cfg.storage, cfg.resolve)
            cipher(cfg.storage)
        except StorageError as exc:
            problems += _config_error(cfg, "storage", exc).problems
    return problems


def _config_error(cfg: Any, key: str, exc: Exception) -> ConfigError:
    return ConfigError([Problem(cfg.source, cfg.line_of(key), key, str(exc))])


async def delete_session(request: web.Request) -> web.Response:
    """Erase a session: its pending entry and every stored call record and transcript."""
    session_id = request.match_info["session_id"]
    subject = request.get(SUBJECT)
    sessions = request.app[SESSIONS]
    session = sessions.get(session_id)
    if session is not None and subject is not None and session.subject != subject:
        return json_error(404, "not_found", "session not found")
    live = [c for c in request.app[RUNTIME].calls.values() if c.session_id == session_id]
    if live:
        return json_error(409, "call_in_progress", "end the session's call before erasing it")
    pending = session is not None and sessions.delete(session_id)
    await request.app[RUNTIME].cluster.forget_session(session_id)
    storage: Storage | None = request.app[STORAGE]
    erased = await storage.erase_session(session_id, subject) if storage is not None else 0
    if not pending and not erased:
        return json_error(404, "not_found", "session not found")
    return web.json_response({"session_id": session_id, "deleted": True, "calls_erased": erased})


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """REST credentials come in a header only (docs/security.md): a query string ends up in
    access logs and browser history, and a subprotocol means nothing outside a WebSocket."""
    authn: Authenticator = request.app[AUTH]
    path = request.path
    if authn.enabled and (path.startswith(PROTECTED_PREFIXES) or path in PROTECTED_PATHS):
        try:
            request[SUBJECT] = authn.verify(token_from_headers(request)).subject
        except AuthError as exc:
            return json_error(
                401, "unauthorized", str(exc), {"WWW-Authenticate": 'Bearer realm="voicebot"'}
            )
    return await handler(request)


def cors_middleware(origins: frozenset[str]) -> Any:
    """Cross-origin access to the REST routes for the configured origins, and only them."""

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        rest = request.path.startswith(("/api/", "/calls", "/health"))
        allowed = origin is not None and origin in origins and rest
        if request.method == "OPTIONS" and origin is not None and rest:
            if not allowed:
                return json_error(403, "cors_refused", f"origin {origin} is not allowed")
            response: web.StreamResponse = web.Response(status=204)
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # errors must reach the page too, or it sees none
                if allowed:
                    _allow(exc, origin, preflight=False)
                raise
        if allowed:
            _allow(response, origin, preflight=request.method == "OPTIONS")
        return response

    return cors


def _allow(response: web.StreamResponse, origin: str, *, preflight: bool) -> None:
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Vary"] = "Origin"
    if preflight:
        response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
        response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
