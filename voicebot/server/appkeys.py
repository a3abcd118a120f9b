"""Typed keys for what the aiohttp application and its requests carry."""

from __future__ import annotations

from typing import Any

from aiohttp import web

RUNTIME: web.AppKey[Any] = web.AppKey("runtime")
SESSIONS: web.AppKey[Any] = web.AppKey("sessions")
SESSION_LIMIT: web.AppKey[Any] = web.AppKey("session_limit")  # new sessions per client
CONNECTIONS: web.AppKey[dict[str, Any]] = web.AppKey("connections")
CHATS: web.AppKey[dict[str, Any]] = web.AppKey("chats")
AUTH: web.AppKey[Any] = web.AppKey("auth")
STORAGE: web.AppKey[Any] = web.AppKey("storage")
TRIMMER: web.AppKey[Any] = web.AppKey("trimmer")
CLUSTER: web.AppKey[Any] = web.AppKey("cluster")  # the sibling workers of `run --workers N`
SUBJECT: web.RequestKey[str | None] = web.RequestKey("subject")
