"""Phone calls: the routes of every registered telephony provider, and their shared state.

`/telephony/{provider}/media` (and `/twilio/media`) upgrade to a media stream (`media_stream.py`)
once the provider's signature check passes; Twilio's HTTP webhooks live in `twilio_webhooks.py`.
One `Telephony` per app holds each provider's options and REST client, the open streams and the
inbound lag figures behind `GET /telephony/stats`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from ..audit import audit
from ..telephony.serializer import CallControl, MediaStreamSerializer
from . import twilio_webhooks
from .browser import release_heartbeat
from .media_stream import LagHistogram, MediaStream
from .public_url import request_url

log = logging.getLogger(__name__)

# a 20 ms μ-law media message is ~400 bytes; 64 KiB allows a provider sending 1 s+ chunks
# (security.limits.max_frame_bytes lowers it further)
MAX_MESSAGE_BYTES = 64 * 1024


def provider_options(config: Any, provider: str, cls: type[MediaStreamSerializer]) -> Any:
    """`telephony.{provider}` as the serializer's `Options`: validated by the config loader, or
    the defaults when the section is absent."""
    options = config.telephony.get(provider)
    return options if isinstance(options, cls.Options) else cls.Options(**(options or {}))


def transfer_problems(config: Any, registry: Any) -> list[str]:
    """For `voicebot check` when a flow transfers calls: why no installed telephony provider
    could do it with this config (empty when at least one can)."""
    problems = []
    for name, cls in sorted(registry.transports.items()):
        problem = cls.transfer_problem(provider_options(config, name, cls))
        if problem is None:
            return []
        problems.append(problem)
    return problems or ["no telephony provider is installed, so calls cannot be transferred"]


class Telephony:
    """Per-app view of the registered telephony providers: their options and REST clients."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self._controls: dict[str, CallControl | None] = {}
        self.status_counts: dict[str, int] = {}
        self.streams: set[MediaStream] = set()
        self.inbound_lag = LagHistogram()
        self.idle = asyncio.Event()  # no media stream open: lets shutdown and tests wait for it
        self.idle.set()

    @property
    def public_url(self) -> str:
        return self.runtime.config.server.public_url

    def serializer(self, provider: str) -> type[MediaStreamSerializer] | None:
        return self.runtime.pm.registry.transports.get(provider)

    def options(self, provider: str) -> Any:
        cls = self.serializer(provider)
        return provider_options(self.runtime.config, provider, cls) if cls else None

    def control(self, provider: str) -> CallControl | None:
        if provider not in self._controls:
            cls = self.serializer(provider)
            self._controls[provider] = cls.call_control(self.options(provider)) if cls else None
        return self._controls[provider]

    async def media(self, request: web.Request, provider: str | None = None) -> web.StreamResponse:
        name = provider or request.match_info["provider"]
        cls = self.serializer(name)
        if cls is None:
            raise web.HTTPNotFound(text=f"no telephony provider '{name}' is installed")
        url = request_url(request, self.public_url, websocket=True)
        if cls.authenticate(self.options(name), url, request.headers) is False:
            audit("auth_failed", transport=name, remote=request.remote, reason="bad signature")
            log.warning(
                "%s media stream from %s refused: bad or missing signature for %s",
                name,
                request.remote,
                url,
            )
            raise web.HTTPForbidden(text="invalid signature")
        limits = self.runtime.config.security.limits
        ws = web.WebSocketResponse(
            max_msg_size=min(MAX_MESSAGE_BYTES, limits.max_frame_bytes),
            heartbeat=limits.heartbeat_s,  # a dead peer is dropped even if the idle timer is long
            compress=False,
        )
        await ws.prepare(request)
        options = self.options(name)
        stream = MediaStream(
            self.runtime,
            ws,
            cls(),
            self.control(name),
            self.inbound_lag,
            no_transfer_reason=cls.transfer_problem(options) or "",
        )
        self.streams.add(stream)
        self.idle.clear()
        try:
            await stream.run()
        finally:
            release_heartbeat(ws)
            self.streams.discard(stream)
            if not self.streams:
                self.idle.set()
        return ws

    async def stats(self, request: web.Request) -> web.Response:
        """`?reset=1` starts a new measurement window for the lag figures after reading them."""
        lag = self.inbound_lag.summary()
        if request.query.get("reset"):
            self.inbound_lag = LagHistogram()
            for stream in self.streams:
                stream._lag = self.inbound_lag
        return web.json_response(
            {
                "active_streams": len(self.streams),
                "status_callbacks": self.status_counts,
                "inbound_lag_ms": lag,
            }
        )

    async def aclose(self, _app: web.Application | None = None) -> None:
        for control in self._controls.values():
            if control is not None:
                await control.aclose()
        self._controls.clear()


TELEPHONY = web.AppKey("telephony", Telephony)


def add_routes(app: web.Application, runtime: Any) -> Telephony:
    """Media streams at `/telephony/{provider}/media` (and `/twilio/media`), Twilio webhooks."""
    telephony = Telephony(runtime)
    app[TELEPHONY] = telephony

    async def twilio_media(request: web.Request) -> web.StreamResponse:
        return await telephony.media(request, "twilio")

    app.router.add_get("/telephony/{provider}/media", telephony.media)
    app.router.add_get("/twilio/media", twilio_media)
    app.router.add_get("/telephony/stats", telephony.stats)
    twilio_webhooks.add_routes(app, telephony)
    app.on_cleanup.append(telephony.aclose)
    return telephony
