"""The phone door: who may start a phone call, and which call variables they may set.

A phone route is one of four states, chosen at start-up from the config (docs/telephony.md):

- `signed`: the provider's signature secret is set (Twilio: `auth_token`); every webhook and
  media upgrade must carry the provider's signature.
- `auth`: no signature secret, but `security.auth` is on; every webhook (and a non-Twilio media
  upgrade) must carry a `security.auth` credential, whose subject becomes the call's.
- `open`: neither, and `allow_unsigned: true` says so explicitly; anyone may call. Loud at start-up.
- `closed`: neither, and not opened: the routes answer 403 with a JSON reason. This is the
  default config's state without `TWILIO_AUTH_TOKEN`, so it still starts, takes browser calls,
  and says at start-up how to turn phone calls on.

Whatever the state, a media stream of a carrier that answers calls by webhook (Twilio) needs a
one-time token that only its answer webhook mints (`stream_tokens.py`), and the wire never sets
a reserved call variable.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal

from aiohttp import web

from ..records.audit import audit
from ..telephony.carrier import TOKEN_PARAMETER
from .appkeys import AUTH
from .auth import AuthError

# the name operators filter on, kept from before the module moved into voicebot.server
log = logging.getLogger("voicebot.transports.phone_door")

DoorMode = Literal["signed", "auth", "open", "closed"]

#: Call variables only the server sets: from the wire they would forge the audit subject and
#: count against someone else's `max_calls_per_subject`.
RESERVED_VARIABLES = frozenset({"subject", "call_id", "session_id", "transport"})


def door_mode(cls: Any, options: Any, auth_enabled: bool) -> DoorMode:
    """The state of one provider's phone door (see the module docstring)."""
    if cls.authenticate(options, "", {}) is not None:  # None: no verification configured
        return "signed"
    if auth_enabled:
        return "auth"
    return "open" if getattr(options, "allow_unsigned", False) else "closed"


def closed_reason(name: str, cfg: Any, options: Any) -> str:
    """Why `name`'s phone routes refuse everything, and the ways to open them."""
    ways = []
    if hasattr(options, "auth_token"):
        secret = f"telephony.{name}.auth_token"
        var = cfg.unset_env.get(secret)
        ways.append(f"export {var} (read by {secret})" if var else f"set {secret}")
    ways.append("turn on security.auth")
    if hasattr(options, "allow_unsigned"):
        ways.append(f"set telephony.{name}.allow_unsigned: true to accept unsigned requests")
    return (
        f"phone calls through {name} are off: its requests would not be verified and "
        f"security.auth is off, so anyone could place calls. To take calls, "
        f"{', '.join(ways[:-1])}, or {ways[-1]} (docs/telephony.md)"
    )


def log_start_up(cfg: Any, transports: Mapping[str, Any], options: Callable[[str], Any]) -> None:
    """One line per configured carrier's phone door at start-up: how it is protected, or how
    to open it. Installed carriers without a `telephony.<name>` section are not meant to take
    calls (their doors are shut unless `security.auth` is on): with none configured, one line
    says so instead of one per installed carrier."""
    auth_enabled = cfg.security.auth.mode != "none"
    configured = {n: cls for n, cls in transports.items() if n in (cfg.telephony or {})}
    if transports and not configured:
        level = logging.WARNING if cfg.server.public_url else logging.INFO
        log.log(
            level,
            "no telephony carrier is configured (a telephony.<name> section for one of: %s), "
            "so phone calls %s (docs/telephony.md)",
            ", ".join(sorted(transports)),
            "need a security.auth credential" if auth_enabled else "are off",
        )
    for name, cls in sorted(configured.items()):
        mode = door_mode(cls, options(name), auth_enabled)
        if mode == "closed":
            level = logging.WARNING if cfg.server.public_url else logging.INFO
            log.log(level, "%s", closed_reason(name, cfg, options(name)))
        elif mode == "open":
            log.warning(
                "telephony.%s.allow_unsigned is true: %s webhooks and media streams are "
                "accepted WITHOUT any signature or credential, so anyone who finds the URL can "
                "place calls at your expense and claim any caller ID; set the signature secret "
                "or security.auth for production",
                name,
                name,
            )
        elif mode == "auth":
            log.info(
                "%s phone calls need a security.auth credential on each webhook (e.g. basic "
                "auth in the webhook URL); no signature secret is set",
                name,
            )
        else:
            log.info("%s phone calls need the provider's request signature", name)


def refusal(status: int, code: str, message: str) -> web.HTTPException:
    """An HTTP error with the project's JSON error body."""
    body = json.dumps({"type": "error", "code": code, "message": message})
    exc = web.HTTPException(text=body, content_type="application/json")
    exc.set_status(status)
    return exc


def credential(request: web.Request) -> str:
    """A `security.auth` credential from headers only: `Authorization: Bearer`, the password of
    `Authorization: Basic` (what a carrier sends for `https://user:KEY@host/…` webhook URLs), or
    `X-API-Key`. Query strings are never read: they end up in carriers' and proxies' logs."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[2]
    return request.headers.get("X-API-Key", "")


def subject_of(request: web.Request, transport: str) -> str:
    """The subject of the request's `security.auth` credential; 401 (and an audit line) if none
    is valid."""
    try:
        return request.app[AUTH].verify(credential(request)).subject
    except AuthError as exc:
        audit("auth_failed", transport=transport, remote=request.remote, reason=str(exc))
        log.warning(
            "%s request %s from %s refused: %s", transport, request.path, request.remote, exc
        )
        raise refusal(401, "unauthorized", str(exc)) from None


def drop_reserved(params: Mapping[str, str], transport: str) -> dict[str, str]:
    """Wire parameters without the reserved names (and the stream token), ready to be call
    variables. What was dropped is logged: a real carrier never sends these."""
    kept = {k: v for k, v in params.items() if k not in RESERVED_VARIABLES and k != TOKEN_PARAMETER}
    dropped = sorted(k for k in params if k in RESERVED_VARIABLES)
    if dropped:
        log.info("%s stream: reserved variables from the wire ignored: %s", transport, dropped)
    return kept
