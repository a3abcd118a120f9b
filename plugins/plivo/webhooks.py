"""Plivo's HTTP webhooks: the answer URL, the hangup URL (call status) and the transfer URL.

The answer URL answers `<Stream>`; Plivo's `extraHeaders` allow letters and digits only, so the
one-time stream token travels hex-encoded under `voicebotstreamtoken` and the serializer decodes
it back on `start`. The caller's details are not sent on the wire at all: they are the variables
the token was minted with. The transfer URL is what a transfer points Plivo at (`rest.py`): it
answers `<Dial>` to the `to` of its own, signed, query string. All of them sit behind the core's
phone door (`X-Plivo-Signature-V3`, or a `security.auth` credential).
"""

from __future__ import annotations

import logging

from aiohttp import web

from voicebot.telephony.carrier import WebhookCall

from .._carrier_kit import TRANSFER_TARGET
from . import plivoxml

log = logging.getLogger(__name__)

TOKEN_HEADER = "voicebotstreamtoken"
CALL_STATUSES = frozenset(
    ("ringing", "in-progress", "completed", "busy", "failed", "timeout", "no-answer", "cancel")
)


def _xml(doc: str) -> web.Response:
    return web.Response(text=doc, content_type="application/xml")


async def answer(call: WebhookCall) -> web.Response:
    form = call.params
    call_uuid = str(form.get("CallUUID", ""))
    if call.at_capacity():
        log.warning("Plivo call %r rejected: at capacity", call_uuid)
        return _xml(plivoxml.hangup("busy"))
    variables = {
        "From": str(form.get("From", "")),
        "To": str(form.get("To", "")),
        "CallSid": call_uuid,
    }
    token = call.mint_token(variables, call_id=call_uuid)
    headers = f"{TOKEN_HEADER}={token.encode().hex()}"
    return _xml(plivoxml.stream(call.media_url(), headers))


async def hangup(call: WebhookCall) -> web.Response:
    form = call.params
    call_status = str(form.get("CallStatus", ""))
    call.count_status(call_status if call_status in CALL_STATUSES else "other")
    log.info(
        "Plivo call %r status %r (%r)", form.get("CallUUID"), call_status, form.get("HangupCause")
    )
    return web.Response(status=204)


async def transfer(call: WebhookCall) -> web.Response:
    target = call.request.query.get("to", "")
    caller_id = call.request.query.get("from", "")
    if not TRANSFER_TARGET.match(target) or (caller_id and not TRANSFER_TARGET.match(caller_id)):
        raise web.HTTPBadRequest(
            text='{"type":"error","code":"bad_target","message":"to: an E.164 number or sip: URI"}',
            content_type="application/json",
        )
    return _xml(plivoxml.dial(target, caller_id))
