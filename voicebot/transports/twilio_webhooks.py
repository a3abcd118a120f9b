"""Twilio's HTTP webhooks: the voice webhook that answers a call, and the status callback.

The voice webhook answers TwiML that connects the call to our media WebSocket, passing the
caller's details as stream parameters (they come back in `start.customParameters` and become call
variables). With an auth token configured every webhook must carry a valid `X-Twilio-Signature`;
anything else gets 403 and a log line, and never reaches the pipeline.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from ..audit import audit
from ..telephony import twiml
from .public_url import public_base, request_url, ws_base

if TYPE_CHECKING:
    from multidict import MultiDictProxy

    from ..runtime import Runtime
    from .telephony import Telephony

log = logging.getLogger(__name__)

PROVIDER = "twilio"
STREAM_PARAMETERS = ("From", "To", "CallSid")
CALL_STATUSES = frozenset(
    (
        "queued",
        "initiated",
        "ringing",
        "in-progress",
        "completed",
        "busy",
        "failed",
        "no-answer",
        "canceled",
    )
)


async def _verified_form(request: web.Request, telephony: Telephony) -> MultiDictProxy[str]:
    """The webhook's parameters, once its signature checks out. A webhook configured as GET
    carries them in the query string, which the signed URL already covers."""
    if request.method == "GET":
        body, form, signed_params = b"", request.query, []
    else:
        body = await request.read()
        form = await request.post()
        signed_params = [(k, v) for k, v in form.items() if isinstance(v, str)]
    cls = telephony.serializer(PROVIDER)
    if cls is None:
        raise web.HTTPNotFound(text="the Twilio plugin is not installed")
    url = request_url(request, telephony.public_url)
    options = telephony.options(PROVIDER)
    verdict = cls.authenticate(options, url, request.headers, signed_params, body)
    if verdict is False:
        why = "bad" if "X-Twilio-Signature" in request.headers else "missing"
        audit("auth_failed", transport=PROVIDER, remote=request.remote, reason=f"{why} signature")
        log.warning(
            "Twilio webhook %s from %s refused: %s X-Twilio-Signature (signed URL tried: %s; "
            "set server.public_url if a proxy rewrites it)",
            request.path,
            request.remote,
            why,
            url,
        )
        raise web.HTTPForbidden(text="invalid Twilio signature")
    return form  # type: ignore[return-value]


def add_routes(app: web.Application, telephony: Telephony) -> None:
    async def voice(request: web.Request) -> web.Response:
        form = await _verified_form(request, telephony)
        if _at_capacity(telephony.runtime):
            log.warning("Twilio call %r rejected: at capacity", form.get("CallSid"))
            return web.Response(text=twiml.reject("busy"), content_type="text/xml")
        base = ws_base(public_base(request, telephony.public_url))
        params = {name: str(form.get(name, "")) for name in STREAM_PARAMETERS}
        doc = twiml.connect_stream(f"{base}/twilio/media", params)
        return web.Response(text=doc, content_type="text/xml")

    async def status(request: web.Request) -> web.Response:
        form = await _verified_form(request, telephony)
        call_status = str(form.get("CallStatus", ""))
        key = call_status if call_status in CALL_STATUSES else "other"  # bounded: no free keys
        telephony.status_counts[key] = telephony.status_counts.get(key, 0) + 1
        log.info(
            "Twilio call %r status %r (duration %rs)",
            form.get("CallSid"),
            call_status,
            form.get("CallDuration"),
        )
        return web.Response(status=204)

    for route, handler in (("/twilio/voice", voice), ("/twilio/status", status)):
        app.router.add_post(route, handler)
        app.router.add_get(route, handler)


def _at_capacity(runtime: Runtime) -> bool:
    return not runtime.accepting or len(runtime.calls) >= runtime.config.security.limits.max_calls
