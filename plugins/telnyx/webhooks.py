"""Telnyx TeXML webhooks: the voice webhook answers `<Connect><Stream>` with the caller's details
and the one-time stream token as `<Parameter>`s; the status callback is logged and counted.
Both sit behind the core's phone door (Ed25519 signature, or a `security.auth` credential)."""

from __future__ import annotations

import logging

from aiohttp import web

from voicebot.telephony.carrier import TOKEN_PARAMETER, WebhookCall

from .texml import connect_stream, reject

log = logging.getLogger(__name__)

STREAM_PARAMETERS = ("From", "To", "CallSid")
CALL_STATUSES = frozenset(
    ("queued", "initiated", "ringing", "in-progress", "completed", "busy", "failed", "no-answer")
)


async def voice(call: WebhookCall) -> web.Response:
    form = call.params
    if call.at_capacity():
        log.warning("Telnyx call %r rejected: at capacity", form.get("CallSid"))
        return web.Response(text=reject(), content_type="text/xml")
    params = {name: str(form.get(name, "")) for name in STREAM_PARAMETERS}
    token = call.mint_token(params, call_id=params["CallSid"])
    doc = connect_stream(call.media_url(), {**params, TOKEN_PARAMETER: token})
    return web.Response(text=doc, content_type="text/xml")


async def status(call: WebhookCall) -> web.Response:
    form = call.params
    call_status = str(form.get("CallStatus", ""))
    call.count_status(call_status if call_status in CALL_STATUSES else "other")
    log.info("Telnyx call %r status %r", form.get("CallSid"), call_status)
    return web.Response(status=204)
