"""Compiling the parts of a flow file that many keys share: templates, expressions, template
values, references, escalations and branches. Each records its problems with the file position
and keeps every compiled template for the validator's checks."""

from __future__ import annotations

from typing import Any

from . import templates
from .model import Branch, Escalation, Ref
from .source import Path_, Source
from .templates import Expression, Template, TemplateError, compile_value


class Builder:
    def __init__(self, src: Source) -> None:
        self.src = src
        self.uses: list[tuple[Any, str]] = []  # (compiled template or expression, position)

    def where(self, path: Path_) -> str:
        return self.src.where(path)

    def template(self, value: Any, path: Path_) -> Template | None:
        if not isinstance(value, str):
            return None
        try:
            t = templates.template(value)
        except TemplateError as exc:
            self.src.problem(path, str(exc))
            return None
        self.uses.append((t, self.where(path)))
        return t

    def expression(self, value: Any, path: Path_) -> Expression | None:
        if not isinstance(value, str):
            return None
        if "{{" in value or "{%" in value:
            self.src.problem(path, f"write the expression without braces: {value.strip('{} ')!r}")
            return None
        try:
            e = templates.expression(value)
        except TemplateError as exc:
            self.src.problem(path, str(exc))
            return None
        self.uses.append((e, self.where(path)))
        return e

    def values(self, value: Any, path: Path_) -> Any:
        try:
            compiled = compile_value(value)
        except TemplateError as exc:
            self.src.problem(path, str(exc))
            return {} if isinstance(value, dict) else None
        self.uses.append((compiled, self.where(path)))
        return compiled

    def ref(self, value: Any, path: Path_) -> Ref | None:
        if not isinstance(value, str):
            return None
        return Ref(value, self.where(path))

    def escalation(self, value: Any, path: Path_) -> list[Escalation] | None:
        if not isinstance(value, list):
            return None
        out = []
        for n, entry in enumerate(value):
            if isinstance(entry, str):
                out.append(Escalation(self.template(entry, (*path, n)), True, None))
            elif isinstance(entry, dict):
                goto = self.ref(entry.get("goto"), (*path, n, "goto"))
                say = self.template(entry.get("say"), (*path, n, "say"))
                out.append(Escalation(say, bool(entry.get("reprompt", goto is None)), goto))
        return out

    def branches(self, data: list, path: Path_) -> list[Branch]:
        out = []
        for n, branch in enumerate(data):
            bpath = (*path, n)
            intents = branch.get("intent", ())
            dtmf = branch.get("dtmf")
            dtmf = [] if dtmf is None else dtmf if isinstance(dtmf, list) else [dtmf]
            out.append(
                Branch(
                    where=self.where(bpath),
                    goto=self.ref(branch["goto"], (*bpath, "goto")),  # type: ignore[arg-type]
                    intents=(intents,) if isinstance(intents, str) else tuple(intents),
                    dtmf=tuple(str(x) for x in dtmf),
                    slot=branch.get("slot"),
                    when=self.expression(branch.get("when"), (*bpath, "when")),
                )
            )
        return out
