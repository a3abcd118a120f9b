"""Exotel's webhooks, all behind the core's phone door (basic auth, or `security.auth`):

- `/exotel/voicebot`: the Voicebot applet's dynamic URL. Exotel GETs it with the call's details
  and connects the stream to the `url` it answers;
- `/exotel/transfer-pending`: a Passthru applet after Voicebot. 200 when the bot transferred
  this `CallSid` (the "200" branch: on to Connect), 302 when not (the other branch: Hangup);
- `/exotel/transfer-target`: the Connect applet's dynamic URL. Exotel GETs it with `CallSid`
  and dials what it answers: Programmable Connect's JSON (`destination.numbers`), or with
  `?format=text` the bare number that "Dial whom: number returned by URL" reads. A CallSid
  without a transfer gets 404 JSON.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from aiohttp import web

from voicebot.telephony.carrier import TOKEN_PARAMETER, TelephonyError, WebhookCall

from .control import transfer_key

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


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"type": "error", "code": code, "message": message}, status=status)


async def _target(call: WebhookCall) -> tuple[str, str | None]:
    """The call's `CallSid` and the target its bot recorded (None: no transfer)."""
    call_sid = str(call.params.get("CallSid", ""))
    if not call_sid:
        raise web.HTTPBadRequest(
            text='{"type":"error","code":"no_call_sid","message":"CallSid is required"}',
            content_type="application/json",
        )
    try:
        return call_sid, await call.shared_values.get(transfer_key(call_sid))
    except TelephonyError as exc:
        log.error("Exotel call %s: cannot read its transfer target: %s", call_sid, exc)
        raise web.HTTPServiceUnavailable(
            text='{"type":"error","code":"store_unavailable","message":"try again"}',
            content_type="application/json",
        ) from None


async def transfer_pending(call: WebhookCall) -> web.Response:
    call_sid, target = await _target(call)
    if target is None:
        return web.json_response({"transfer": False, "call_sid": call_sid}, status=302)
    return web.json_response({"transfer": True, "call_sid": call_sid})


async def transfer_target(call: WebhookCall) -> web.Response:
    call_sid, target = await _target(call)
    if target is None:
        return _error(404, "no_transfer", f"no transfer is pending for call {call_sid}")
    log.info("Exotel call %s: Connect applet dials %s", call_sid, target)
    if call.request.query.get("format") == "text":
        return web.Response(text=target, content_type="text/plain")
    # fetch once; the number shown to the callee is the applet's own setting
    return web.json_response({"fetch_after_attempt": False, "destination": {"numbers": [target]}})
