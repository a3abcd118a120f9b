"""What one connection is allowed: its authenticated principal and its rate budget."""

from __future__ import annotations

from typing import Protocol

from ..protocol.events import AuthOk, Error, Event
from .auth import Authenticator, AuthError, Principal
from .limits import ConnectionLimiter


class EventSink(Protocol):
    async def send_event(self, event: Event) -> None: ...


class ConnectionGuard:
    """The connection's principal and rate limiter."""

    def __init__(
        self, authn: Authenticator, principal: Principal | None, limiter: ConnectionLimiter
    ) -> None:
        self.authn = authn
        self.principal = principal
        self.limiter = limiter

    async def reauth(self, token: str, io: EventSink) -> None:
        """A fresh token mid-call. A bad one is reported and the call goes on: the caller proved who
        they are at connect, and `limits.max_call_s` bounds the call (docs/security.md)."""
        if not self.authn.enabled:
            return
        try:
            fresh = self.authn.verify(token)
            if self.principal is not None and fresh.subject != self.principal.subject:
                raise AuthError("token is for another subject")
        except AuthError as exc:
            await io.send_event(Error("auth_failed", str(exc)))
            return
        self.principal = fresh
        await io.send_event(AuthOk(fresh.expires_at))
