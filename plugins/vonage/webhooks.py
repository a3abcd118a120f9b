"""Vonage's HTTP webhooks (answer and event), both POSTed as JSON (set *HTTP POST* for both in
the application's Voice settings: a GET answer's query string is not covered by the signed
JWT). Both sit behind the core's phone door (signed JWT, or a `security.auth` credential)."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from voicebot.telephony.carrier import TOKEN_PARAMETER, WebhookCall, WebhookForm

log = logging.getLogger(__name__)

CONTENT_TYPE = "audio/l16;rate=16000"
#: the header naming the call in the stream's `websocket:connected`
CALL_HEADER = "call_uuid"
CALL_STATUSES = frozenset(
    (
        "started",
        "ringing",
        "answered",
        "completed",
        "busy",
        "failed",
        "timeout",
        "rejected",
        "cancelled",
        "unanswered",
        "disconnected",
        "machine",
        "human",
    )
)


async def read_json(request: web.Request) -> WebhookForm:
    """A JSON object of scalars; what the JWT's `payload_hash` covers is the raw body."""
    body = await request.read()
    try:
        data = json.loads(body) if body else {}
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text='{"type":"error","code":"bad_json","message":"Vonage webhooks are a JSON object"}',
            content_type="application/json",
        )
    params = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    return params, [], body


async def answer(call: WebhookCall) -> web.Response:
    p = call.params
    uuid = p.get("uuid", "")
    if call.at_capacity() or not uuid:
        log.warning("Vonage call %r rejected: %s", uuid, "no uuid" if uuid else "at capacity")
        return web.json_response([])  # an empty NCCO ends the call
    variables = {"From": p.get("from", ""), "To": p.get("to", ""), "CallSid": uuid}
    token = call.mint_token(variables, call_id=uuid)
    endpoint = {
        "type": "websocket",
        "uri": call.media_url(),
        "content-type": CONTENT_TYPE,
        "headers": {CALL_HEADER: uuid, TOKEN_PARAMETER: token},
    }
    return web.json_response([{"action": "connect", "endpoint": [endpoint]}])


async def event(call: WebhookCall) -> web.Response:
    status = call.params.get("status", "")
    call.count_status(status if status in CALL_STATUSES else "other")
    log.info("Vonage call %r status %r", call.params.get("uuid"), status)
    return web.Response(status=204)
