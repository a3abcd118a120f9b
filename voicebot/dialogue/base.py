"""The boundary between the voice pipeline and whatever decides what the bot says.

The call hands each finished user turn to a `Dialogue` and speaks what it yields, as it yields it:
text pieces are joined and cut into sentences for TTS, so a dialogue that streams an LLM reply
gets its first sentence spoken before the reply is complete. The dialogue knows nothing about
audio; the call knows nothing about flows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ..providers import LLM, IntentClassifier, Usage

# ------------------------------------------------------------------------------ what comes in


@dataclass(frozen=True)
class UserInput:
    """One finished user turn.

    kind: `speech` (final transcript), `text` (typed), `dtmf` (one or more key presses),
    `noinput` (the caller said nothing within the step's timeout).
    """

    kind: Literal["speech", "text", "dtmf", "noinput"]
    text: str = ""
    digits: str = ""
    confidence: float | None = None


# ----------------------------------------------------------------------------- what goes out


@dataclass(frozen=True)
class Say:
    """A piece of the bot's reply. Consecutive pieces form one reply.

    A whole prompt is joined to the previous one with a space; a streamed LLM fragment
    (`delta=True`) is appended exactly as given, since it carries its own spacing.
    `barge_in=False` makes this piece uninterruptible (legal disclaimers). `cache_key` marks fixed
    prompts whose synthesized audio may be cached per process.
    """

    text: str
    barge_in: bool = True
    cache_key: str | None = None
    delta: bool = False


@dataclass(frozen=True)
class Listen:
    """How the next input is collected: no-input timeout, and DTMF collection rules."""

    noinput_timeout_ms: int | None = 6000
    dtmf_max_digits: int = 1
    dtmf_terminator: str | None = None
    dtmf_timeout_ms: int = 3000
    barge_in: bool = True


@dataclass(frozen=True)
class IntentEvent:
    intent: str | None
    confidence: float
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hangup:
    reason: str = "completed"


@dataclass(frozen=True)
class Transfer:
    target: str
    mode: Literal["cold", "warm"] = "cold"


@dataclass(frozen=True)
class Note:
    """Diagnostics for tools (`voicebot chat`, the client): node transitions, slot changes."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


BotOutput = Say | Listen | IntentEvent | Hangup | Transfer | Note


# ----------------------------------------------------------------------------------- context


@dataclass
class DialogueContext:
    """What a dialogue may use from its call. One per call."""

    call_id: str
    variables: dict[str, Any]
    intent: IntentClassifier | None = None
    llm: LLM | None = None
    actions: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    slot_types: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    report_usage: Callable[[Usage], None] = lambda usage: None


class Dialogue(ABC):
    """Per-call conversation state. `start()` yields the greeting; `handle()` each reply."""

    @abstractmethod
    def start(self) -> AsyncIterator[BotOutput]: ...

    @abstractmethod
    def handle(self, event: UserInput) -> AsyncIterator[BotOutput]: ...

    def interrupted(self, said: str, heard: str) -> None:
        """The caller cut the last reply short; `heard` is what reached them. Dialogues keeping
        a transcript should record `heard`, not `said`."""

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state for `GET /calls` and session resume (node, slots, history)."""
        return {}


DialogueFactory = Callable[[DialogueContext], Dialogue]
