"""The hooks a voicebot plugin can implement.

Registration hooks receive a `register` callback, the way Simon Willison's `llm` does it: a plugin
module reads like a recipe, one `register_*` implementation listing its provider classes. Built-in
plugins in `voicebot_plugins` are loaded through the same `voicebot` entry-point group as any
third-party distribution, so nothing they do is out of reach for an external package.

Lifecycle hooks are called synchronously on the event loop; an implementation that needs I/O must
schedule its own task and must not block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .providers import Transcript, Usage

hookspec = pluggy.HookspecMarker("voicebot")
hookimpl = pluggy.HookimplMarker("voicebot")

Register = Callable[..., None]


# -------------------------------------------------------------------------------- registration


@hookspec
def register_denoise(register: Register) -> None:
    """Register noise-suppression provider classes (`voicebot.providers.Denoiser`), selected by
    `providers.denoise` in config.yaml."""


@hookspec
def register_vad(register: Register) -> None:
    """Register VAD provider classes: `register(MyVAD)`; the class's `name` is the config name."""


@hookspec
def register_stt(register: Register) -> None:
    """Register speech-to-text provider classes."""


@hookspec
def register_tts(register: Register) -> None:
    """Register text-to-speech provider classes."""


@hookspec
def register_llm(register: Register) -> None:
    """Register LLM provider classes."""


@hookspec
def register_intent(register: Register) -> None:
    """Register intent classifier classes."""


@hookspec
def register_telephony(register: Register) -> None:
    """Register phone carriers: `register(Carrier(serializer=..., webhooks=(...)))`, one
    `voicebot.telephony.carrier.Carrier` with its media format, HTTP routes and call control."""


@hookspec
def register_transports(register: Register) -> None:
    """Deprecated: use `register_telephony`. `register(name, serializer_class)` registers a
    carrier with a media stream only (no webhooks)."""


@hookspec
def register_actions(register: Register) -> None:
    """Register flow actions: `register("bookings.create", async_fn)`; flows call them by name."""


@hookspec
def register_slot_types(register: Register) -> None:
    """Register slot types for flows: `register("iban", parser_fn)`."""


# ----------------------------------------------------------------------------------- lifecycle


@hookspec
def call_started(call: Any) -> None:
    """A call was accepted. `call.id`, `call.transport`, `call.variables` are set."""


@hookspec
def transcript(call: Any, transcript: Transcript) -> None:
    """A final transcript of the caller's turn, before the dialogue sees it."""


@hookspec(firstresult=True)
def redact(call: Any, text: str) -> str | None:
    """Return `text` with personal data masked for storage and logs (first non-None wins)."""


@hookspec
def bot_spoke(call: Any, text: str, heard: str, interrupted: bool) -> None:
    """A reply segment finished or was cut off; `heard` is the part the caller actually heard."""


@hookspec
def turn_completed(call: Any, turn: dict[str, Any]) -> None:
    """A turn finished; `turn` is the latency breakdown sent to the client as `metrics`."""


@hookspec
def usage(call: Any, usage: Usage) -> None:
    """A provider reported billable usage (tokens, characters, audio seconds)."""


@hookspec
def call_ended(call: Any, reason: str) -> None:
    """The call is over and its resources are released."""
