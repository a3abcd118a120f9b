"""`POST /api/v1/calls` places an outbound call; `GET /api/v1/calls/{id}` is its progress.

Behind the same `security.auth` as every `/api/` route. The call goes out through a configured
carrier's `place_call`; the carrier calls our answer webhook when the callee picks up (the flow
then starts with the request's `variables`) and reports progress to its status webhook, which
updates the record this module serves (`voicebot.telephony.outbound`).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from ..telephony.outbound import OutboundCall
from ..telephony.serializer import TelephonyError
from .appkeys import RUNTIME
from .rest import RestError, bounded_str, json_object
from .telephony import TELEPHONY

MAX_BODY_BYTES = 16 * 1024
MAX_VARIABLES = 64
_NUMBER = re.compile(r"^\+[1-9][0-9]{6,14}$")


def _number(body: dict[str, Any], key: str) -> str:
    value = bounded_str(body, key, 32)
    if value is None or not _NUMBER.match(value):
        raise RestError(400, "invalid_number", f"`{key}` must be an E.164 number (+15551234567)")
    return value


def _variables(body: dict[str, Any]) -> dict[str, str]:
    variables = body.get("variables") or {}
    if not isinstance(variables, dict) or len(variables) > MAX_VARIABLES:
        raise RestError(
            400, "invalid_body", f"`variables` must be an object of at most {MAX_VARIABLES} strings"
        )
    for key, value in variables.items():
        if not isinstance(value, str) or len(key) > 64 or len(value) > 1024:
            raise RestError(
                400, "invalid_body", "each variable must be a string (names ≤64, values ≤1024)"
            )
    return dict(variables)


def _carrier(request: web.Request, body: dict[str, Any]) -> tuple[str, Any]:
    """The carrier named in the body, or the one configured carrier that can place calls."""
    telephony = request.app[TELEPHONY]
    runtime = request.app[RUNTIME]
    named = bounded_str(body, "carrier", 64)
    names = [named] if named else sorted(runtime.config.telephony or {})
    able = []
    for name in names:
        if telephony.carrier(name) is None:
            continue
        control = telephony.control(name)
        if getattr(control, "place_call", None) is not None:
            able.append((name, control))
    if len(able) == 1:
        return able[0]
    if named:
        raise RestError(
            409, "cannot_place_calls", f"carrier '{named}' is not configured to place calls"
        )
    raise RestError(
        409,
        "cannot_place_calls",
        "no single configured carrier can place calls: configure one (e.g. telephony.twilio "
        "account_sid and auth_token) or name it in `carrier`"
        if not able
        else f"several carriers can place calls ({', '.join(n for n, _ in able)}): name one "
        "in `carrier`",
    )


async def place(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    body = await json_object(request, MAX_BODY_BYTES)
    to, from_ = _number(body, "to"), _number(body, "from")
    flow = bounded_str(body, "flow", 256)
    if flow is not None and not runtime.knows_flow(flow):
        raise RestError(400, "unknown_flow", "`flow` is not the name of a flow of this server")
    variables = _variables(body)
    name, control = _carrier(request, body)
    public_url = runtime.config.server.public_url
    if not public_url:
        raise RestError(409, "no_public_url", "placing calls needs server.public_url")
    try:
        call_id = await control.place_call(to, from_, public_url)
    except TelephonyError as exc:
        raise RestError(502, "carrier_refused", str(exc)) from None
    call = OutboundCall(call_id, name, to, from_, flow, variables)
    await request.app[TELEPHONY].outbound.add(call)
    return web.json_response(call.as_dict(), status=201)


async def show(request: web.Request) -> web.Response:
    call = await request.app[TELEPHONY].outbound.get(request.match_info["call_id"])
    if call is None:
        raise RestError(404, "unknown_call", "no outbound call with this id")
    return web.json_response(call.as_dict())


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/calls", place)
    app.router.add_get("/api/v1/calls/{call_id}", show)
