"""Sessions created by `POST /api/v1/sessions` (and `/api/chat`) before a client connects.

Bounded in number, bytes and time: an expired session is as unknown as one never created, and a
full store refuses new sessions rather than evicting pending ones (eviction would let a flood push
out real callers' sessions, resumable calls included). A session carries its conversation across
connections: when a call drops (no `end_call`, no goodbye), its state is kept for
`resume_grace_s` and a reconnect with the same id continues where it stopped. A call that ended
cleanly consumes a single-use session.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: What a session costs beyond its strings: the object, its dict slot, the id. An estimate, so the
#: byte bound holds even for sessions whose fields are all empty.
SESSION_OVERHEAD_BYTES = 512


class SessionsFull(Exception):
    """The store is at `max_sessions` or `max_total_bytes`; `retry_after` is when one expires."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Session:
    id: str
    expires_at: float
    namespace: str = ""
    flow: str | None = None
    subject: str | None = None
    size: int = SESSION_OVERHEAD_BYTES  # what it counts against `max_total_bytes`
    snapshot: dict[str, Any] | None = None  # state of the call that dropped, for a resume
    dropped_at: float = 0.0
    consumed: bool = False
    active_call: Any = None  # the live call using this session, if any

    def resumable(self, grace_s: float, now: float | None = None) -> dict[str, Any] | None:
        if self.snapshot is None:
            return None
        if (now or time.time()) - self.dropped_at > grace_s:
            self.snapshot = None
            return None
        return self.snapshot


class SessionStore:
    def __init__(
        self,
        ttl_s: float = 900.0,
        max_sessions: int = 10_000,
        single_use: bool = False,
        resume_grace_s: float = 120.0,
        max_total_bytes: int = 8 * 1024 * 1024,
        on_forget: Callable[[str], Any] | None = None,
    ) -> None:
        self.ttl_s = ttl_s
        self.single_use = single_use
        self.resume_grace_s = resume_grace_s
        self.max_sessions = max_sessions
        self.max_total_bytes = max_total_bytes
        self.total_bytes = 0
        self.on_forget = on_forget  # e.g. drop the chat conversation that lived in the session
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def create(
        self,
        *,
        namespace: str = "",
        flow: str | None = None,
        subject: str | None = None,
        session_id: str | None = None,
    ) -> Session:
        """A new session (under `session_id` when the client chose one that is free); raises
        `SessionsFull` when the store is at either bound."""
        self._purge()
        size = SESSION_OVERHEAD_BYTES + sum(
            len(s.encode()) for s in (namespace, flow or "", subject or "", session_id or "")
        )
        if len(self._sessions) >= self.max_sessions:
            raise SessionsFull("too many open sessions; try again later", self._next_expiry())
        if self.total_bytes + size > self.max_total_bytes:
            raise SessionsFull("session storage is full; try again later", self._next_expiry())
        session = Session(
            id=session_id or secrets.token_urlsafe(16),
            expires_at=time.time() + self.ttl_s,
            namespace=namespace,
            flow=flow,
            subject=subject,
            size=size,
        )
        self._sessions[session.id] = session
        self.total_bytes += size
        return session

    def adopt(
        self,
        session_id: str,
        *,
        expires_at: float,
        namespace: str = "",
        flow: str | None = None,
        subject: str | None = None,
    ) -> Session | None:
        """A session another instance created (`cluster:`), known here from now on within the
        same bounds as one created here; None when the store is full."""
        session = self._sessions.get(session_id)
        if session is not None:
            return session
        self._purge()
        size = SESSION_OVERHEAD_BYTES + sum(
            len(s.encode()) for s in (namespace, flow or "", subject or "")
        )
        if len(self._sessions) >= self.max_sessions or (
            self.total_bytes + size > self.max_total_bytes
        ):
            return None
        session = Session(session_id, expires_at, namespace, flow, subject, size)
        self._sessions[session_id] = session
        self.total_bytes += size
        return session

    def get(self, session_id: str) -> Session | None:
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires_at < time.time():
            self.delete(session_id)
            return None
        if self.single_use and session.consumed:
            if session.resumable(self.resume_grace_s) is None and session.active_call is None:
                return None
        return session

    def call_ended(self, session: Session, snapshot: dict[str, Any], clean: bool) -> None:
        """Remember a dropped call's state for a resume; a clean end forgets (and consumes)."""
        session.active_call = None
        session.consumed = True
        if clean:
            session.snapshot = None
        else:
            session.snapshot = snapshot
            session.dropped_at = time.time()

    def delete(self, session_id: str) -> bool:
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        self.total_bytes -= session.size
        if self.on_forget is not None:
            self.on_forget(session_id)
        return True

    def _purge(self) -> None:
        # every session lives the same ttl_s, so insertion order is expiry order
        now = time.time()
        while self._sessions:
            first = next(iter(self._sessions.values()))
            if first.expires_at >= now:
                break
            self.delete(first.id)

    def _next_expiry(self) -> float:
        if not self._sessions:
            return 1.0
        first = next(iter(self._sessions.values()))
        return max(1.0, math.ceil(first.expires_at - time.time()))

    def __len__(self) -> int:
        return len(self._sessions)
