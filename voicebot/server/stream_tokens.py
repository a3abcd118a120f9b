"""One-time stream tokens from a carrier's answer webhook to the media stream it answered with.

The webhook and its media stream are two connections, and need not reach the same process:
`voicebot run --workers N` shares the port between workers (SO_REUSEPORT), and a fleet shares a
load balancer. So a token lives where every process that may see its stream can take it:

- `cluster.redis_url` set: in Redis (`voicebot.cluster.stream_tokens`), taken atomically by any
  instance or worker. Redis unreachable at mint time: kept in this process, and logged.
- otherwise: in the process that minted it; a worker that does not know a token asks its
  siblings (`siblings.py`), and the one that minted it hands it over, once.

A take always looks here first, then in Redis, then asks the siblings.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

log = logging.getLogger("voicebot.transports.phone_door")

#: Twilio opens the stream within a second or two of our TwiML answer.
STREAM_TOKEN_TTL_S = 30.0


class StreamTokens:
    """This process's pending tokens.

    A token is `id.secret`: the id finds the entry, the secret is compared in constant time, and
    the entry is removed on first use, so a stream cannot be opened without a webhook that passed
    the door, and a token cannot be replayed. Pending tokens are bounded: past `capacity` the
    oldest is forgotten (its call would fail to start, as after an expiry).
    """

    def __init__(
        self,
        ttl_s: float = STREAM_TOKEN_TTL_S,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.capacity = capacity
        self._clock = clock
        self._pending: dict[str, tuple[float, str, str, dict[str, str]]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def mint(self, variables: Mapping[str, str], call_id: str = "") -> str:
        """A new token that `take` will trade, once and within `ttl_s`, for `variables`; only
        for a stream of `call_id` when one is given."""
        now = self._clock()
        for key, (expires, *_) in list(self._pending.items()):  # oldest first
            if expires > now and len(self._pending) < self.capacity:
                break
            del self._pending[key]
        key, secret = secrets.token_urlsafe(12), secrets.token_urlsafe(24)
        self._pending[key] = (now + self.ttl_s, secret, call_id, dict(variables))
        return f"{key}.{secret}"

    def knows(self, token: Any) -> bool:
        """Whether `token`'s id is pending here (its secret unchecked)."""
        return isinstance(token, str) and token.partition(".")[0] in self._pending

    def take(self, token: Any, call_id: str = "") -> dict[str, str] | None:
        """The variables minted with `token`, consuming it; None if unknown, used, expired, or
        minted for a call other than `call_id`."""
        if not isinstance(token, str):
            return None
        key, _, secret = token.partition(".")
        entry = self._pending.get(key)
        if entry is None:
            return None
        expires, expected, bound, variables = entry
        if not hmac.compare_digest(secret.encode("utf-8", "replace"), expected.encode()):
            return None
        del self._pending[key]
        if bound and bound != call_id:
            return None
        return variables if expires > self._clock() else None

    def hand_over(self, token: str) -> tuple[float, str, dict[str, str]] | None:
        """(seconds left, bound call id, variables) of a pending token, removing it here: it is
        being stored elsewhere. None if it is not pending (or already expired)."""
        key = token.partition(".")[0]
        entry = self._pending.pop(key, None)
        if entry is None:
            return None
        expires, _, bound, variables = entry
        left = expires - self._clock()
        return (left, bound, variables) if left > 0 else None

    def put_back(self, token: str, left_s: float, call_id: str, variables: dict[str, str]) -> None:
        """Keep a token handed over here after all (storing it elsewhere failed)."""
        key, _, secret = token.partition(".")
        self._pending[key] = (self._clock() + left_s, secret, call_id, variables)


class SharedTokens(Protocol):
    """Where the fleet keeps tokens (`voicebot.cluster.stream_tokens.RedisStreamTokens`)."""

    async def put(
        self, token: str, left_s: float, call_id: str, variables: Mapping[str, str]
    ) -> bool: ...

    async def take(self, token: str) -> tuple[str, dict[str, str]] | None: ...


class Siblings(Protocol):
    """The other workers of `run --workers N` (`siblings.Cluster`)."""

    async def take_token(self, token: str, call_id: str) -> dict[str, str] | None: ...


class TokenStore:
    """The tokens of one process, and where else to look for them (see the module docstring)."""

    def __init__(self, local: StreamTokens, shared: SharedTokens | None = None) -> None:
        self.local = local
        self.shared = shared
        #: set when this process is one worker of `run --workers N`
        self.siblings: Siblings | None = None

    def mint(self, variables: Mapping[str, str], call_id: str = "") -> str:
        """A token, pending here until `publish` moves it to the fleet's store."""
        return self.local.mint(variables, call_id)

    async def publish(self, tokens: Iterable[str]) -> None:
        """Move tokens just minted to the fleet's store, before the answer naming them is sent,
        so the stream may open anywhere. Redis unreachable: they stay here (and are logged)."""
        if self.shared is None:
            return
        for token in tokens:
            entry = self.local.hand_over(token)
            if entry is None:
                continue
            if not await self.shared.put(token, *entry):
                self.local.put_back(token, *entry)
                log.warning(
                    "stream token kept in this process only (the cluster's Redis is "
                    "unreachable): the call fails unless its media stream reaches this process"
                )

    async def take(self, token: Any, call_id: str = "") -> dict[str, str] | None:
        """The variables minted with `token`, wherever it is pending, consuming it there; None if
        unknown anywhere, used, expired, or minted for a call other than `call_id`."""
        if not isinstance(token, str) or not token:
            return None
        if self.local.knows(token):
            return self.local.take(token, call_id)
        if self.shared is not None:
            taken = await self.shared.take(token)
            if taken is not None:
                bound, variables = taken
                return None if bound and bound != call_id else variables
        if self.siblings is not None:
            return await self.siblings.take_token(token, call_id)
        return None
