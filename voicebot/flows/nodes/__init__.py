"""Flow node kinds, one module each, and the registry the loader, validator, schema and runner
read. Importing this package registers the built-in kinds, in the order messages and the schema
list them; `register` adds another (see docs/architecture.md, "a new flow node kind")."""

from __future__ import annotations

from . import action, ask, branch, hangup, http, jump, listen, llm, say, transfer
from . import set as set_
from .base import NodeKind, kind, kinds, register, say_first, unregister

for _kind in (
    say.SAY,
    ask.ASK,
    listen.LISTEN,
    llm.LLM_KIND,
    action.ACTION,
    http.HTTP,
    set_.SET,
    branch.IF,
    branch.SWITCH,
    jump.GOTO,
    jump.CALL,
    jump.RETURN,
    transfer.TRANSFER,
    hangup.HANGUP,
):
    register(_kind)


def kind_keys() -> tuple[str, ...]:
    """The keys that make a node a kind other than a bare `say:`."""
    return tuple(name for name in kinds() if name != "say")


__all__ = ["NodeKind", "kind", "kind_keys", "kinds", "register", "say_first", "unregister"]
