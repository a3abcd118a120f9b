"""Phone calls: the routes of every registered carrier, and their shared state.

`/telephony/{provider}/media` (and each carrier's `media_paths`, e.g. `/twilio/media`) upgrade to
a media stream (`media_stream.py`) once the phone door (`phone_door.py`) lets the request
through; each carrier's HTTP webhooks are mounted behind the same door by `webhooks.py`.
One `Telephony` per app holds each carrier's options and REST client, the open streams and the
inbound lag figures behind `GET /telephony/stats`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from ..cluster import make_outbound_store, make_shared_tokens
from ..records.audit import audit
from ..telephony.carrier import TOKEN_PARAMETER, Carrier
from ..telephony.lag import LagHistogram
from ..telephony.outbound import OutboundStore
from ..telephony.serializer import CallControl, MediaStreamSerializer, Start
from . import phone_door
from .browser import release_heartbeat
from .media_stream import MediaStream
from .public_url import request_url
from .stream_tokens import StreamTokens, TokenStore
from .webhooks import add_webhooks

# the name operators filter on, kept from before the module moved into voicebot.server
log = logging.getLogger("voicebot.transports.telephony")

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
    # the carriers this config sets up; with none, every installed one (in a single problem)
    configured = [n for n in sorted(registry.transports) if n in (config.telephony or {})]
    for name in configured or sorted(registry.transports):
        cls = registry.transports[name]
        problem = cls.transfer_problem(provider_options(config, name, cls))
        if problem is None:
            return []
        problems.append(problem + _unset_variables(config, f"telephony.{name}"))
    if problems and not configured:
        return ["no telephony carrier is configured; " + "; or ".join(problems)]
    return problems or ["no telephony provider is installed, so calls cannot be transferred"]


def _unset_variables(config: Any, section: str) -> str:
    """Which `${X}` references in `section` took their empty default (`, because X is not set in
    the environment`): then the config line is right and the environment is not."""
    unset = sorted(
        {var for path, var in config.unset_env.items() if path.rpartition(".")[0] == section}
    )
    if not unset:
        return ""
    if len(unset) == 1:
        return f", because {unset[0]} is not set in the environment"
    return f", because {', '.join(unset[:-1])} and {unset[-1]} are not set in the environment"


class Telephony:
    """Per-app view of the registered telephony providers: their options and REST clients."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self._controls: dict[str, CallControl | None] = {}
        self.status_counts: dict[str, int] = {}
        #: calls placed through POST /api/v1/calls (in Redis when the fleet shares one)
        self.outbound: OutboundStore = make_outbound_store(runtime.cluster)
        self.streams: set[MediaStream] = set()
        self.inbound_lag = LagHistogram()
        self.idle = asyncio.Event()  # no media stream open: lets shutdown and tests wait for it
        self.idle.set()
        #: answer webhook → media stream (in Redis too when the fleet shares one)
        self.tokens = TokenStore(
            StreamTokens(capacity=max(64, 4 * runtime.config.security.limits.max_calls)),
            make_shared_tokens(runtime.cluster, max(64, 4 * runtime.config.cluster.max_calls)),
        )

    @property
    def public_url(self) -> str:
        return self.runtime.config.server.public_url

    def carrier(self, provider: str) -> Carrier | None:
        return self.runtime.pm.registry.carriers.get(provider)

    def serializer(self, provider: str) -> type[MediaStreamSerializer] | None:
        carrier = self.carrier(provider)
        return carrier.serializer if carrier else None

    def options(self, provider: str) -> Any:
        cls = self.serializer(provider)
        return provider_options(self.runtime.config, provider, cls) if cls else None

    def door(self, provider: str) -> phone_door.DoorMode:
        auth_enabled = self.runtime.config.security.auth.mode != "none"
        return phone_door.door_mode(self.serializer(provider), self.options(provider), auth_enabled)

    def closed_reason(self, provider: str) -> str:
        return phone_door.closed_reason(provider, self.runtime.config, self.options(provider))

    def control(self, provider: str) -> CallControl | None:
        if provider not in self._controls:
            cls = self.serializer(provider)
            control = cls.call_control(self.options(provider)) if cls else None
            use_values = getattr(control, "use_shared_values", None)
            if use_values is not None:  # a carrier whose later webhooks read what calls left
                use_values(self.runtime.cluster.shared_values())
            self._controls[provider] = control
        return self._controls[provider]

    async def media(self, request: web.Request, provider: str | None = None) -> web.StreamResponse:
        name = provider or request.match_info["provider"]
        carrier = self.carrier(name)
        if carrier is None:
            raise web.HTTPNotFound(text=f"no telephony provider '{name}' is installed")
        cls = carrier.serializer
        mode = self.door(name)
        if mode == "closed":
            raise phone_door.refusal(403, "phone_calls_off", self.closed_reason(name))
        # the stream was pointed at this instance's own URL (`cluster.instance_url`): signed so
        own = self.runtime.cluster.instance_url or self.public_url
        url = request_url(request, own, websocket=True)
        if cls.authenticate(self.options(name), url, request.headers) is False:
            audit("auth_failed", transport=name, remote=request.remote, reason="bad signature")
            log.warning(
                "%s media stream from %s refused: bad or missing signature for %s",
                name,
                request.remote,
                url,
            )
            if carrier.auth_failure_status == 401:
                raise phone_door.refusal(401, "unauthorized", "missing or wrong credential")
            raise phone_door.refusal(403, "bad_signature", "invalid signature")
        trusted: dict[str, str] = {}
        if mode == "auth" and not carrier.stream_token:  # else the token vouches for the call
            trusted = {"subject": phone_door.subject_of(request, name)}

        async def admit(start: Start) -> dict[str, str] | None:
            if carrier.stream_token or TOKEN_PARAMETER in start.custom_parameters:
                return await self._admit_token(start)
            return trusted

        limits = self.runtime.config.security.limits
        ws = web.WebSocketResponse(
            max_msg_size=min(MAX_MESSAGE_BYTES, limits.max_frame_bytes),
            heartbeat=limits.heartbeat_s,  # a dead peer is dropped even if the idle timer is long
            compress=False,
            protocols=carrier.subprotocols,
        )
        await ws.prepare(request)
        options = self.options(name)
        serializer = cls()
        serializer.configure(options)
        stream = MediaStream(
            self.runtime,
            ws,
            serializer,
            self.control(name),
            self.inbound_lag,
            no_transfer_reason=cls.transfer_problem(options) or "",
            admit=admit,
            remote=request.remote or "",
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

    async def _admit_token(self, start: Start) -> dict[str, str] | None:
        """The variables the answer webhook minted this stream's token with; None when the token
        is missing, used, expired, or was minted for another call."""
        token = start.custom_parameters.get(TOKEN_PARAMETER)
        return await self.tokens.take(token, call_id=start.call_id)

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

    def log_start_up(self) -> None:
        """How each phone door is protected, or how to open it (called once the server is up)."""
        transports = self.runtime.pm.registry.transports
        phone_door.log_start_up(self.runtime.config, transports, self.options)

    async def aclose(self, _app: web.Application | None = None) -> None:
        for control in self._controls.values():
            if control is not None:
                await control.aclose()
        self._controls.clear()


TELEPHONY = web.AppKey("telephony", Telephony)


def add_routes(app: web.Application, runtime: Any) -> Telephony:
    """Media streams at `/telephony/{provider}/media`, and each registered carrier's own media
    paths and webhooks."""
    telephony = Telephony(runtime)
    app[TELEPHONY] = telephony
    app.router.add_get("/telephony/{provider}/media", telephony.media)
    app.router.add_get("/telephony/stats", telephony.stats)
    for name, carrier in sorted(runtime.pm.registry.carriers.items()):

        async def media(request: web.Request, name: str = name) -> web.StreamResponse:
            return await telephony.media(request, name)

        options = telephony.options(name)
        for path in carrier.media_paths + carrier.serializer.configured_media_paths(options):
            app.router.add_get(path, media)
        add_webhooks(app, telephony, carrier)
    app.on_cleanup.append(telephony.aclose)
    return telephony
