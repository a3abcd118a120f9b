"""Sessions created by `POST /api/v1/sessions` before a client connects to `/ws/voice`.

Bounded in number and time: an expired session is as unknown as one never created.
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


class SessionStore:
    def __init__(self, ttl_s: float = 900.0, max_sessions: int = 100_000) -> None:
        self.ttl_s = ttl_s
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
        return session

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
