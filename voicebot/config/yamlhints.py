"""PyYAML's syntax errors in plain words: what is probably wrong, and on which line.

"expected <block end>, but found '<block mapping start>'" means nothing to someone editing a
config file for the first time; almost always the indentation is off, a tab slipped in, or a
bracket or quote is not closed.
"""

from __future__ import annotations

import yaml

INDENTATION = "check the indentation of this line and the one above; use spaces, not tabs"


def explain(exc: yaml.MarkedYAMLError) -> tuple[int | None, str]:
    """(line, message) for a YAML syntax error: the line most likely at fault, 1-based."""
    problem = exc.problem or str(exc)
    mark = exc.problem_mark
    line = mark.line + 1 if mark else None
    opened = exc.context_mark.line + 1 if exc.context_mark else None
    if "'\\t'" in problem:
        return line, "a tab character: indent with spaces, not tabs"
    if problem.startswith("mapping values are not allowed"):
        return line, (
            f"unexpected `key:` here: {INDENTATION}. A value that contains ': ' needs quotes"
        )
    if problem.startswith("could not find expected ':'"):
        return opened or line, (
            f"this line is not `key: value` (is the ':' missing?), or {INDENTATION}"
        )
    if "while parsing a flow" in (exc.context or ""):
        bracket = "{" if "mapping" in (exc.context or "") else "["
        closing = "}" if bracket == "{" else "]"
        return line, (
            f"the {bracket} opened on line {opened} is not closed with {closing} where expected "
            "(or its items are not separated by commas)"
        )
    if "quoted scalar" in (exc.context or ""):
        return opened or line, "a quote opened on this line is never closed"
    if problem.startswith("expected <block end>"):
        return line, INDENTATION
    return line, f"{problem}: {INDENTATION}"
