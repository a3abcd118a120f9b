"""The Voicebot applet's dynamic URL: Exotel GETs it with the call's details and connects the
stream to the `url` it answers. Behind the core's phone door (basic auth, or `security.auth`)."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from aiohttp import web

from voicebot.telephony.carrier import TOKEN_PARAMETER, WebhookCall

log = logging.getLogger(__name__)


async def voicebot(call: WebhookCall) -> web.Response:
    p = call.params
    call_sid = str(p.get("CallSid", ""))
    if call.at_capacity():
        log.warning("Exotel call %r refused: at capacity", call_sid)
        raise web.HTTPServiceUnavailable(
            text='{"type":"error","code":"at_capacity","message":"no capacity for a call"}',
            content_type="application/json",
        )
    variables = {
        "From": str(p.get("CallFrom", p.get("From", ""))),
        "To": str(p.get("CallTo", p.get("To", ""))),
        "CallSid": call_sid,
    }
    token = call.mint_token(variables, call_id=call_sid)
    return web.json_response({"url": f"{call.media_url()}?{urlencode({TOKEN_PARAMETER: token})}"})
