"""Outbound calls and their progress, carrier-neutral and I/O-free.

`POST /api/v1/calls` places a call through a carrier's `place_call` and records it here under
the carrier's call id; the carrier's answer webhook looks the record up to start the call with
its flow and variables, and its status webhook reports progress. What a dialer needs is kept per
call: status, when it was answered and ended, duration and outcome. The table is bounded: the
oldest finished calls are forgotten first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

#: a carrier's call statuses (Twilio's names; other carriers map onto them) → ours
STATUSES = {
    "queued": "queued",
    "initiated": "queued",
    "ringing": "ringing",
    "in-progress": "answered",
    "answered": "answered",
    "completed": "completed",
    "busy": "busy",
    "no-answer": "no-answer",
    "failed": "failed",
    "canceled": "canceled",
}
FINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


@dataclass
class OutboundCall:
    id: str  # the carrier's call id: the answered call's `call_sid`
    carrier: str
    to: str
    from_: str
    flow: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    status: str = "queued"
    created_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    ended_at: float | None = None
    duration_s: float | None = None

    @property
    def transport(self) -> str:
        """Like a call's: the `call_ended` hook gets an unanswered call's record."""
        return self.carrier

    @property
    def outcome(self) -> str | None:
        """None while the call is under way; then `answered`, `busy`, `no-answer`, `failed` or
        `canceled`."""
        if self.status not in FINAL:
            return None
        return "answered" if self.answered_at is not None else self.status

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "carrier": self.carrier,
            "to": self.to,
            "from": self.from_,
            "flow": self.flow,
            "variables": self.variables,
            "status": self.status,
            "outcome": self.outcome,
            "created_at": self.created_at,
            "answered_at": self.answered_at,
            "ended_at": self.ended_at,
            "duration_s": self.duration_s,
        }


class OutboundCalls:
    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._calls: OrderedDict[str, OutboundCall] = OrderedDict()

    def add(self, call: OutboundCall) -> None:
        self._calls[call.id] = call
        while len(self._calls) > self.capacity:
            oldest = next(
                (k for k, c in self._calls.items() if c.status in FINAL), next(iter(self._calls))
            )
            del self._calls[oldest]

    def get(self, call_id: str) -> OutboundCall | None:
        return self._calls.get(call_id)

    def progress(
        self, call_id: str, carrier_status: str, duration_s: float | None = None
    ) -> OutboundCall | None:
        """Apply one status callback; the record, or None for a call we did not place. A
        status arriving after the final one (callbacks may be retried or reordered) is ignored."""
        call = self._calls.get(call_id)
        status = STATUSES.get(carrier_status)
        if call is None or status is None or call.status in FINAL:
            return call
        now = time.time()
        if status == "answered" and call.answered_at is None:
            call.answered_at = now
        if status in FINAL:
            call.ended_at = now
            if duration_s is not None:
                call.duration_s = duration_s
            elif call.answered_at is not None:
                call.duration_s = round(now - call.answered_at, 3)
            else:
                call.duration_s = 0.0
        call.status = status
        return call
