"""What a call needs from its surroundings: the process (`CallServices`) and the transport
(`CallIO`), and nothing more.

`Runtime` satisfies this structurally; a call (or a test) can be built from anything that does,
so `voicebot.call` never imports the runtime that creates calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..config import Config
    from ..dialogue import Dialogue
    from ..protocol.events import Event
    from ..providers.deadlines import Deadline
    from ..providers.workers import WorkerPool


class CallServices(Protocol):
    config: Config
    #: per role (vad, stt, partials, tts, llm...): the started provider or fallback chain
    providers: dict[str, Any]
    deadlines: dict[str, Deadline]
    workers: WorkerPool

    @property
    def hook(self) -> Any:
        """The plugin hooks (`voicebot.hookspecs`): call_started, transcript, bot_spoke..."""
        ...

    def new_dialogue(
        self,
        call_id: str,
        variables: dict[str, Any],
        report_usage: Callable[[Any], None] | None = None,
        *,
        flow: str | None = None,
        snapshot: dict[str, Any] | None = None,
    ) -> Dialogue: ...

    def record_error(self, code: str) -> None:
        """Count an `error` the call reported (provider failures are in the process's metrics)."""
        ...


class CallIO(Protocol):
    """What a transport implements for its call."""

    supports_marks: bool

    async def send_audio(self, frame: bytes) -> None: ...
    async def send_event(self, event: Event) -> None: ...
    async def send_mark(self, name: str) -> None: ...
    async def clear(self) -> None: ...
    async def transfer(self, target: str) -> bool: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...
