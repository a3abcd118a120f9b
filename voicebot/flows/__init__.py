"""Declarative YAML dialogue flows: loader, validator, per-call runner and tooling.

See docs/flows.md for the language. The call pipeline only needs `FlowLibrary.new_dialogue()`;
`voicebot check|chat|test|schema` use `check_flows` and `voicebot.flows.commands`.
"""

from .library import FlowLibrary, check_flows, load_flows
from .model import FlowError, FlowSet
from .runner import FlowDialogue

__all__ = ["FlowDialogue", "FlowError", "FlowLibrary", "FlowSet", "check_flows", "load_flows"]
