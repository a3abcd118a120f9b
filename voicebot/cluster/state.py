"""What an instance asks of the fleet, and the in-process answer a single instance gives.

`LocalCluster` is exactly the single instance as it always was: the transports' own limits
(`security.limits`) decide admission, sessions live in the process's `SessionStore`, and the
calls list and call commands see this process's calls only.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from ..hookspecs import hookimpl
from ..protocol import events

log = logging.getLogger("voicebot.cluster")

#: The end reason of a call whose session continues on a new connection (here or elsewhere).
TAKEN_OVER = "resumed on a new connection"


class ClusterUnavailable(Exception):
    """Redis cannot be reached at start: the instance refuses to run alone while configured to
    cooperate (it would over-admit calls the fleet already counts)."""


def default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class ClusterState:
    """The interface; this base class is also the single-instance behaviour."""

    mode = "local"

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.config = runtime.config.cluster
        self.instance_id = self.config.instance_id or default_instance_id()
        #: where phone media streams for calls answered here must come back to ("": public_url)
        self.instance_url = self.config.instance_url
        self._values: Any = None

    async def start(self) -> None:
        """Connect; raises `ClusterUnavailable` when the fleet's store cannot be reached."""

    async def stop(self) -> None:
        """Release this instance's slots and connections."""

    # ---------------------------------------------------------------------------- admission

    async def admit(self, slot: str, subject: str | None, live: bool = True) -> str | None:
        """Take a fleet-wide call slot: None when admitted, else why not. Local limits have
        been checked by the caller; a single instance has nothing more to check. `live=False`
        reserves a slot for a call not started yet (a phone call's media stream to come): it
        expires unless the call starts within `cluster.slot_ttl_s`."""
        return None

    async def release(self, slot: str) -> None:
        """Give a slot back (a call ended, or was refused after `admit`)."""

    # ----------------------------------------------------------------------------- sessions

    async def session_created(self, session: Any) -> None:
        """Make a new session known to the fleet."""

    async def fetch_session(self, store: Any, session_id: str) -> Any:
        """The session `session_id` as this instance should see it now, or None."""
        return store.get(session_id)

    async def forget_session(self, session_id: str) -> None:
        """A session was erased (`DELETE /api/v1/sessions/{id}`): erase the fleet's copy too."""

    # ------------------------------------------------------------------- calls and commands

    async def fleet_calls(self) -> list[dict[str, Any]]:
        """Every call of the fleet, each with the instance that runs it."""
        return [{**c.info(), "instance": self.instance_id} for c in self.runtime.calls.values()]

    async def command(self, call_id: str, op: str, **args: Any) -> dict[str, Any] | None:
        """Run `op` (`hangup`, `transfer`) on the call wherever it runs; None: no such call.
        Raises `ClusterUnavailable` when the call may run elsewhere but Redis is lost, and
        `TimeoutError` when its instance does not answer."""
        return await self.run_local(call_id, op, args)

    async def run_local(self, call_id: str, op: str, args: dict[str, Any]) -> dict[str, Any] | None:
        call = self.runtime.calls.get(call_id)
        if call is None or call.ended:
            return None
        subject = args.get("subject")
        if subject is not None and call.variables.get("subject") != subject:
            return None
        if op == "hangup":
            call.finish(str(args.get("reason") or "hung up by an operator"))
            return {"ok": True, "instance": self.instance_id}
        if op == "transfer":
            target = str(args.get("target", ""))
            await call.io.send_event(events.Transfer(target, "operator"))
            ok = await call.io.transfer(target)
            if ok:
                call.end_reason = f"transferred to {target}"
                call.clean_end = True
                call.hangup(call.end_reason)
            return {"ok": ok, "instance": self.instance_id}
        if op == "takeover":  # the session continues on another instance
            snapshot = call.snapshot()
            call.end_reason = TAKEN_OVER
            call.hangup(TAKEN_OVER)
            return {"ok": True, "instance": self.instance_id, "snapshot": snapshot}
        return {"ok": False, "instance": self.instance_id, "error": f"unknown command {op}"}

    # ------------------------------------------------------------------------ shared values

    def shared_values(self) -> Any:
        """The `SharedValues` carriers keep short-lived per-call facts in (an Exotel transfer's
        target, read by a later webhook): in-process here, in Redis for a fleet. One per
        instance, so a call and a webhook see the same store."""
        if self._values is None:
            self._values = self._make_values()
        return self._values

    def _make_values(self) -> Any:
        from ..telephony.values import LocalValues

        return LocalValues()

    # ------------------------------------------------------------------------------ status

    def health(self) -> dict[str, Any]:
        return {"mode": self.mode, "instance": self.instance_id}

    def metric_families(self) -> list[Any]:
        """The cluster's own figures for /metrics (prometheus-client metric families)."""
        return []

    # ------------------------------------------------------------------------------- hooks

    @hookimpl
    def turn_completed(self, call: Any, turn: dict[str, Any]) -> None:
        """A turn boundary: where a session's flow state is saved for another instance."""

    @hookimpl
    def call_ended(self, call: Any, reason: str) -> None:
        """Where a session's last state is saved."""


class LocalCluster(ClusterState):
    """One instance, state in this process (no `cluster.redis_url`)."""
