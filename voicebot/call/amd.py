"""Answering-machine detection on a live call: the sans-I/O `MachineDetector` fed the frames the
VAD judges, its decision written where flows read it.

`call.answered_by` becomes `human`, `machine` or `unknown` within the first ~3 s of the callee's
audio (unless the carrier already said, e.g. Twilio's `AnsweredBy`), and `call.beep` becomes
`"true"` when a voicemail beep is heard, so a flow can wait for it and leave its message. It runs
for outbound calls (`pipeline.amd: outbound`, the default), every call (`always`) or none.
"""

from __future__ import annotations

import logging
from typing import Any

from ..audio.amd import MachineDetector

log = logging.getLogger("voicebot.call.amd")

WATCH_BEEP_MS = 30_000  # after `machine`, how long the beep is still listened for


def wanted(mode: str, variables: dict[str, Any]) -> bool:
    if mode == "always":
        return True
    return mode == "outbound" and variables.get("direction") == "outbound"


class CallAmd:
    def __init__(self, call_id: str, variables: dict[str, Any], frame_ms: int) -> None:
        self._call_id = call_id
        self._variables = variables
        self._frame_ms = frame_ms
        self._det: MachineDetector | None = None
        self.done = False

    @property
    def decided_at_ms(self) -> int | None:
        """How much of the callee's audio was heard before the decision."""
        return self._det.decided_at_ms if self._det is not None else None

    def __call__(self, frame: bytes, rate: int) -> None:
        if self._det is None:
            self._det = MachineDetector(rate, self._frame_ms)
        det = self._det
        decided, beeped = det.result is not None, det.beep
        det.feed(frame)
        if det.result is not None and not decided:
            self._variables.setdefault("answered_by", det.result)  # the carrier's word wins
            at = det.decided_at_ms
            log.info("call %s: answered by %s (%s ms)", self._call_id, det.result, at)
        if det.beep and not beeped:
            self._variables["beep"] = "true"
            log.info("call %s: voicemail beep", self._call_id)
        t = det.decided_at_ms or 0
        if det.result in ("human", "unknown") or det.beep or (t and det._t - t > WATCH_BEEP_MS):
            self.done = True
