"""Outbound calls and their progress, carrier-neutral and I/O-free.

`POST /api/v1/calls` places a call through a carrier's `place_call` and records it here under
the carrier's call id; the carrier's answer webhook looks the record up to start the call with
its flow and variables, and its status webhook reports progress. What a dialer needs is kept per
call: status, when it was answered and ended, duration and outcome.

The store is async because it may be shared: with `cluster.redis_url` the records live in Redis
(`voicebot.cluster.outbound`), so the instance that placed a call, the one its status webhook
reaches and the one its answer lands on all see the same record. `OutboundCalls` here is the
in-process one, bounded: the oldest finished calls are forgotten first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Protocol

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
    #: what every `call_ended` hook reads of a call, for an unanswered call's record
    session_id: ClassVar[None] = None
    turns_count: ClassVar[int] = 0

    @property
    def transport(self) -> str:
        """Like a call's: the `call_ended` hook gets an unanswered call's record."""
        return self.carrier

    @property
    def started_at(self) -> float:
        return self.created_at

    @property
    def outcome(self) -> str | None:
        """None while the call is under way; then `answered`, `busy`, `no-answer`, `failed` or
        `canceled`."""
        if self.status not in FINAL:
            return None
        return "answered" if self.answered_at is not None else self.status

    def record(self) -> dict[str, Any]:
        """Every field, for a shared store (`from_record` reads it back)."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> OutboundCall:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})

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


def advance(
    call: OutboundCall, carrier_status: str, duration_s: float | None, now: float
) -> tuple[bool, bool]:
    """Apply one status callback to `call`: (changed, ended by it). A status arriving after the
    final one (callbacks may be retried, reordered, or reach two instances) changes nothing, so
    a call ends exactly once."""
    status = STATUSES.get(carrier_status)
    if status is None or call.status in FINAL:
        return False, False
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
    changed = status != call.status or status in FINAL
    call.status = status
    return changed, status in FINAL


class OutboundStore(Protocol):
    """Where outbound call records live: this process, or Redis shared by the fleet."""

    async def add(self, call: OutboundCall) -> None: ...

    async def get(self, call_id: str) -> OutboundCall | None: ...

    async def progress(
        self, call_id: str, carrier_status: str, duration_s: float | None = None
    ) -> tuple[OutboundCall | None, bool]:
        """Apply one status callback: the record (None for a call we did not place) and
        whether this callback ended the call."""
        ...


class OutboundCalls:
    """The in-process store: the last `capacity` calls, the oldest finished ones evicted first."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._calls: OrderedDict[str, OutboundCall] = OrderedDict()

    async def add(self, call: OutboundCall) -> None:
        self.put(call)

    def put(self, call: OutboundCall) -> None:
        self._calls[call.id] = call
        while len(self._calls) > self.capacity:
            oldest = next(
                (k for k, c in self._calls.items() if c.status in FINAL), next(iter(self._calls))
            )
            del self._calls[oldest]

    async def get(self, call_id: str) -> OutboundCall | None:
        return self._calls.get(call_id)

    async def progress(
        self, call_id: str, carrier_status: str, duration_s: float | None = None
    ) -> tuple[OutboundCall | None, bool]:
        call = self._calls.get(call_id)
        if call is None:
            return None, False
        return call, advance(call, carrier_status, duration_s, time.time())[1]
