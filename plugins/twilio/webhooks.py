"""Twilio's HTTP webhooks: the voice webhook that answers a call, and the status callback.

The voice webhook answers TwiML that connects the call to our media WebSocket, passing the
caller's details and a one-time stream token as stream parameters (they come back in
`start.customParameters`; the call's variables are the ones the token was minted with). Both
routes sit behind the core's phone door (`X-Twilio-Signature` or a `security.auth` credential):
a handler here only runs for a request that passed it.
"""

from __future__ import annotations

import logging

from aiohttp import web

from voicebot.audio.amd import carrier_answered_by
from voicebot.telephony.carrier import FLOW_VARIABLE, TOKEN_PARAMETER, WebhookCall

from .twiml import connect_stream, reject

log = logging.getLogger(__name__)

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


async def voice(call: WebhookCall) -> web.Response:
    form = call.params
    if call.at_capacity() or not await call.reserve(str(form.get("CallSid", ""))):
        log.warning("Twilio call %r rejected: at capacity", form.get("CallSid"))
        return web.Response(text=reject("busy"), content_type="text/xml")
    params = {name: str(form.get(name, "")) for name in STREAM_PARAMETERS}
    variables = dict(params)
    outbound = await call.outbound_call(params["CallSid"])  # placed by POST /api/v1/calls
    if outbound is not None:
        variables = {**outbound.variables, **params, "direction": "outbound"}
        if outbound.flow:
            variables[FLOW_VARIABLE] = outbound.flow
    answered_by = carrier_answered_by(str(form.get("AnsweredBy", "")))
    if answered_by is not None:  # Twilio's own AMD (telephony.twilio.machine_detection)
        variables["answered_by"] = answered_by
    token = call.mint_token(variables, call_id=params["CallSid"])
    doc = connect_stream(call.media_url(), {**params, TOKEN_PARAMETER: token})
    return web.Response(text=doc, content_type="text/xml")


async def status(call: WebhookCall) -> web.Response:
    form = call.params
    call_status = str(form.get("CallStatus", ""))
    call.count_status(call_status if call_status in CALL_STATUSES else "other")  # bounded keys
    try:
        duration = float(form["CallDuration"]) if form.get("CallDuration") else None
    except ValueError:
        duration = None
    await call.call_progress(str(form.get("CallSid", "")), call_status, duration)
    log.info(
        "Twilio call %r status %r (duration %rs)",
        form.get("CallSid"),
        call_status,
        form.get("CallDuration"),
    )
    return web.Response(status=204)
