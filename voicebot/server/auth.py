"""Who is calling: JWT or static API key, from wherever a client can put a credential.

REST clients send it in a header. Browsers cannot set headers on a WebSocket, so on `/ws/voice` a
token may also arrive in the `token` query parameter, as the second entry of
`Sec-WebSocket-Protocol: bearer, <token>`, or in a first `{"type":"auth","token":…}` message.
Whatever the route, the token itself is never logged: failures log the reason only, and
`voicebot.server.redact` keeps credentials out of aiohttp's logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp import WSMsgType, web

from ..config import AuthConfig

log = logging.getLogger("voicebot.auth")

SUBPROTOCOL = "bearer"  # `new WebSocket(url, ["bearer", token])`; the server answers "bearer"
_SUBPROTOCOL_ALIASES = (SUBPROTOCOL, "access_token")
_HMAC_ALGS = {"HS256", "HS384", "HS512"}
_ASYMMETRIC_ALGS = {
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
}  # fmt: skip


class AuthError(Exception):
    """Authentication failed; the message is the close reason, safe to show and to log."""


class AuthBusy(AuthError):
    """Too many connections are waiting to send their first-message token: try again later."""


@dataclass(frozen=True)
class Principal:
    subject: str
    expires_at: float | None = None
    claims: dict[str, Any] = field(default_factory=dict)


class Authenticator:
    """Verifies credentials per `security.auth`. Keys are loaded once, at construction."""

    def __init__(self, cfg: AuthConfig, resolve: Callable[[str], Path] = Path) -> None:
        self.cfg = cfg
        self.mode = cfg.mode
        self._keys = [k.encode() for k in cfg.api_keys if k]
        self._public_key: str | None = None
        self._jwks: jwt.PyJWKSet | None = None
        self.waiting = 0  # connections inside their first-message window
        if cfg.mode == "api_key" and not self._keys:
            raise ValueError(
                "security.auth.mode is api_key but security.auth.api_keys is empty; "
                "add keys (e.g. `- ${VOICEBOT_API_KEY}`)"
            )
        if cfg.mode == "jwt":
            self._load_jwt(cfg, resolve)

    def _load_jwt(self, cfg: AuthConfig, resolve: Callable[[str], Path]) -> None:
        algs = set(cfg.jwt.algorithms)
        unknown = algs - _HMAC_ALGS - _ASYMMETRIC_ALGS
        if not algs or unknown:
            raise ValueError(
                f"security.auth.jwt.algorithms: {sorted(unknown) or 'empty'} not allowed; "
                f"use e.g. HS256, RS256 or ES256 ('none' is never accepted)"
            )
        if algs & _HMAC_ALGS and not cfg.jwt.secret:
            raise ValueError("security.auth.jwt.secret is empty but an HS* algorithm is allowed")
        if algs & _ASYMMETRIC_ALGS:
            if cfg.jwt.public_key_file:
                self._public_key = resolve(cfg.jwt.public_key_file).read_text()
            elif cfg.jwt.jwks_file:
                text = resolve(cfg.jwt.jwks_file).read_text()
                self._jwks = jwt.PyJWKSet.from_json(text)
            else:
                raise ValueError(
                    "security.auth.jwt: RS*/ES* algorithms need public_key_file or jwks_file"
                )

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def verify(self, token: str) -> Principal:
        if not token:
            raise AuthError("authentication required: no token")
        if self.mode == "api_key":
            return self._verify_key(token)
        return self._verify_jwt(token)

    def _verify_key(self, token: str) -> Principal:
        given = token.encode()
        ok = False
        for key in self._keys:  # compare against every key: timing says nothing about which
            ok |= hmac.compare_digest(given, key)
        if not ok:
            raise AuthError("invalid API key")
        return Principal("key-" + hashlib.sha256(given).hexdigest()[:12])

    def _verify_jwt(self, token: str) -> Principal:
        c = self.cfg.jwt
        try:
            header = jwt.get_unverified_header(token)
            alg = header.get("alg")
            if alg not in c.algorithms:
                raise AuthError(f"token algorithm '{alg}' is not allowed")
            claims = jwt.decode(
                token,
                key=self._key_for(alg, header.get("kid")),
                algorithms=[alg],
                audience=c.audience or None,
                issuer=c.issuer or None,
                leeway=c.leeway_s,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("token not valid yet (nbf/iat)") from None
        except jwt.InvalidAudienceError:
            raise AuthError("token audience is wrong") from None
        except jwt.InvalidIssuerError:
            raise AuthError("token issuer is wrong") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature is invalid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token has no '{exc.claim}' claim") from None
        except (jwt.InvalidTokenError, jwt.PyJWKError, ValueError, TypeError):
            raise AuthError("token is malformed") from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject.strip():
            # an empty subject would own nothing and match every unowned session
            raise AuthError("token has an empty 'sub' claim")
        return Principal(subject, float(claims["exp"]), claims)

    def _key_for(self, alg: str, kid: str | None) -> Any:
        # the key follows the algorithm family, so a public key can never serve as an HMAC secret
        if alg in _HMAC_ALGS:
            return self.cfg.jwt.secret
        if self._public_key is not None:
            return self._public_key
        if self._jwks is None:
            raise AuthError(f"token algorithm '{alg}' is not allowed")
        keys = self._jwks.keys
        if kid is not None:
            keys = [k for k in keys if k.key_id == kid]
        if len(keys) != 1:
            raise AuthError("no key in the JWKS matches the token's kid")
        return keys[0].key


# ------------------------------------------------------------------------- where tokens live


def token_from_headers(request: web.Request) -> str:
    """A credential from the Authorization or X-API-Key header: the only places REST looks."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-API-Key", "")


def token_from_request(request: web.Request) -> str:
    """A WebSocket's credential: a header, else the subprotocol, else the query."""
    token = token_from_headers(request)
    if token:
        return token
    offered = subprotocols(request)
    for i, proto in enumerate(offered[:-1]):
        if proto.lower() in _SUBPROTOCOL_ALIASES:
            return offered[i + 1]
    return request.query.get("token", "")


def subprotocols(request: web.Request) -> list[str]:
    raw = request.headers.get("Sec-WebSocket-Protocol", "")
    return [p.strip() for p in raw.split(",") if p.strip()]


def chosen_subprotocols(request: web.Request) -> tuple[str, ...]:
    """What the server may answer in `Sec-WebSocket-Protocol`: the marker, never the token."""
    offered = [p.lower() for p in subprotocols(request)]
    return tuple(p for p in _SUBPROTOCOL_ALIASES if p in offered)


def token_from_message(raw: str) -> str | None:
    """The token of a first `{"type":"auth","token":…}` or `{"token":…}` message, else None."""
    try:
        msg = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(msg, dict) or msg.get("type", "auth") != "auth":
        return None
    token = msg.get("token")
    return token if isinstance(token, str) else None


def expired(principal: Principal | None) -> bool:
    return bool(principal and principal.expires_at and principal.expires_at < time.time())


async def authenticate_ws(
    request: web.Request, ws: web.WebSocketResponse, authn: Authenticator, max_waiting: int
) -> Principal | None:
    """The caller's principal (None when auth is off); raises `AuthError` with a close reason.

    Sockets waiting for a first-message token are not calls yet, so they are capped separately
    (`max_waiting`): otherwise idle sockets could pile up 5 s at a time without limit."""
    if not authn.enabled:
        return None
    token = token_from_request(request)
    if token:
        return authn.verify(token)
    if authn.waiting >= max_waiting:
        raise AuthBusy("too many connections waiting to authenticate; try again later")
    timeout = authn.cfg.first_message_timeout_s
    authn.waiting += 1
    try:
        msg = await asyncio.wait_for(ws.receive(), timeout)
    except TimeoutError:
        raise AuthError(f"authentication required: no token within {timeout:g} s") from None
    finally:
        authn.waiting -= 1
    if msg.type != WSMsgType.TEXT:
        raise AuthError("authentication required: send a token before anything else")
    token = token_from_message(msg.data)
    if token is None:
        raise AuthError('authentication required: first message must be {"type":"auth",…}')
    return authn.verify(token)
