"""Twilio's HTTP webhooks: the voice webhook that answers a call, and the status callback.

The voice webhook answers TwiML that connects the call to our media WebSocket, passing the
caller's details and a one-time stream token as stream parameters (they come back in
`start.customParameters`; the call's variables are the ones the token was minted with). Every
webhook passes the phone door first (`phone_door.py`): with an auth token it must carry a valid
`X-Twilio-Signature`, with `security.auth` a credential; anything else gets a 4xx with a JSON
reason and a log line, and never reaches the pipeline.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from ..audit import audit
from ..limits import calls_of
from ..telephony import twiml
from .phone_door import TOKEN_PARAMETER, refusal, subject_of
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


async def _read_form(request: web.Request) -> tuple[MultiDictProxy[str], list, bytes]:
    """The webhook's parameters, the ones the signature covers, and the raw body. A webhook
    configured as GET carries them in the query string, which the signed URL already covers."""
    if request.method == "GET":
        return request.query, [], b""
    if request.content_type.startswith("multipart/"):
        raise refusal(
            415,
            "unsupported_media_type",
            "Twilio webhooks are application/x-www-form-urlencoded; multipart is not accepted",
        )
    body = await request.read()
    try:
        form = await request.post()
    except (ValueError, LookupError) as exc:  # a bogus charset, undecodable bytes
        raise refusal(400, "bad_form", f"the webhook body is not a valid form: {exc}") from None
    signed = [(k, v) for k, v in form.items() if isinstance(v, str)]
    return form, signed, body  # type: ignore[return-value]


async def _verified_form(
    request: web.Request, telephony: Telephony
) -> tuple[MultiDictProxy[str], str | None]:
    """The webhook's parameters once it passed the phone door, and the subject when the door is
    `security.auth` (docs/telephony.md)."""
    cls = telephony.serializer(PROVIDER)
    if cls is None:
        raise web.HTTPNotFound(text="the Twilio plugin is not installed")
    mode = telephony.door(PROVIDER)
    if mode == "closed":
        raise refusal(403, "phone_calls_off", telephony.closed_reason(PROVIDER))
    form, signed_params, body = await _read_form(request)
    if mode == "auth":
        return form, subject_of(request, PROVIDER)
    url = request_url(request, telephony.public_url)
    options = telephony.options(PROVIDER)
    if cls.authenticate(options, url, request.headers, signed_params, body) is False:
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
        raise refusal(403, "bad_signature", "invalid Twilio signature")
    return form, None


def add_routes(app: web.Application, telephony: Telephony) -> None:
    async def voice(request: web.Request) -> web.Response:
        form, subject = await _verified_form(request, telephony)
        runtime = telephony.runtime
        if _at_capacity(runtime) or (
            subject is not None
            and calls_of(runtime.calls, subject)
            >= runtime.config.security.limits.max_calls_per_subject
        ):
            log.warning("Twilio call %r rejected: at capacity", form.get("CallSid"))
            return web.Response(text=twiml.reject("busy"), content_type="text/xml")
        base = ws_base(public_base(request, telephony.public_url))
        params = {name: str(form.get(name, "")) for name in STREAM_PARAMETERS}
        trusted = {**params, "subject": subject} if subject is not None else params
        token = telephony.tokens.mint(trusted)
        doc = twiml.connect_stream(f"{base}/twilio/media", {**params, TOKEN_PARAMETER: token})
        return web.Response(text=doc, content_type="text/xml")

    async def status(request: web.Request) -> web.Response:
        form, _ = await _verified_form(request, telephony)
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
