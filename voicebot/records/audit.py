"""The audit trail: one JSON line per call start and end on logger `voicebot.audit`.

Who (subject), how (transport), how long and how it ended; never what was said. Route the logger to
its own handler to keep the trail apart from diagnostics.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ..hookspecs import hookimpl

log = logging.getLogger("voicebot.audit")


def audit(event: str, **fields: Any) -> None:
    log.info(json.dumps({"event": event, "at": round(time.time(), 3), **fields}, default=str))


class AuditLog:
    """Built-in lifecycle plugin; registered for every server by `security.install`."""

    @hookimpl
    def call_started(self, call: Any) -> None:
        audit(
            "call_started",
            call_id=call.id,
            session_id=call.session_id,
            subject=call.variables.get("subject"),
            transport=call.transport,
        )

    @hookimpl
    def call_ended(self, call: Any, reason: str) -> None:
        audit(
            "call_ended",
            call_id=call.id,
            session_id=call.session_id,
            subject=call.variables.get("subject"),
            transport=call.transport,
            duration_s=round(time.time() - call.started_at, 3),
            turns=call.turns_count,
            outcome=reason,
        )
