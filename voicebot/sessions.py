"""Sessions created by `POST /api/v1/sessions` before a client connects to `/ws/voice`.

Bounded in number and time: an expired session is as unknown as one never created. A session
carries its conversation across connections: when a call drops (no `end_call`, no goodbye), its
state is kept for `resume_grace_s` and a reconnect with the same id continues where it stopped.
A call that ended cleanly consumes a single-use session.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Session:
    id: str
    expires_at: float
    namespace: str = ""
    flow: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    subject: str | None = None
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
        max_sessions: int = 100_000,
        single_use: bool = False,
        resume_grace_s: float = 120.0,
    ) -> None:
        self.ttl_s = ttl_s
        self.single_use = single_use
        self.resume_grace_s = resume_grace_s
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def create(self, **fields: Any) -> Session:
        self._purge()
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)
        session = Session(
            id=secrets.token_urlsafe(16), expires_at=time.time() + self.ttl_s, **fields
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str) -> Session | None:
        session = self._sessions.get(session_id)
        if session is None or session.expires_at < time.time():
            self._sessions.pop(session_id, None)
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
        return self._sessions.pop(session_id, None) is not None

    def _purge(self) -> None:
        now = time.time()
        while self._sessions:
            first = next(iter(self._sessions.values()))
            if first.expires_at >= now:
                break
            self._sessions.popitem(last=False)

    def __len__(self) -> int:
        return len(self._sessions)
