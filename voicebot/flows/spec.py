"""The flow file format, written down once: a small type language and the keys every node kind
shares. Each kind's own keys live with the kind (`flows/nodes/<kind>.py`).

The structural checker (types, required keys, unknown keys with did-you-mean) and the JSON Schema
that editors use (`voicebot schema`, `schema.json`, built by `flows/schema.py`) are both derived
from these types, so the two cannot drift apart. Semantic checks (references, reachability,
templates) live in `validate`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from .builtin_intents import builtin_intents
from .source import Path_, Source

# ------------------------------------------------------------------------------ type language


@dataclass(frozen=True)
class T:
    """A value type; `kind`: str, int, number, bool, null, any, list, map, object or oneof."""

    kind: str
    doc: str = ""
    item: T | None = None  # list / map values
    fields: dict[str, T] = field(default_factory=dict)  # object
    required: tuple[str, ...] = ()
    options: tuple[T, ...] = ()  # oneof
    enum: tuple[Any, ...] = ()
    minimum: float | None = None
    pattern: str | None = None
    label: str = ""  # maps: what a key names ("slot"), for messages


def s(doc: str = "", **kw: Any) -> T:
    return T("str", doc, **kw)


def i(doc: str = "", **kw: Any) -> T:
    return T("int", doc, **kw)


def num(doc: str = "") -> T:
    return T("number", doc)


def b(doc: str = "") -> T:
    return T("bool", doc)


def anything(doc: str = "") -> T:
    return T("any", doc)


def lst(item: T, doc: str = "") -> T:
    return T("list", doc, item=item)


def mp(item: T, doc: str = "", label: str = "") -> T:
    return T("map", doc, item=item, label=label)


def obj(doc: str = "", required: tuple[str, ...] = (), **fields: T) -> T:
    return T("object", doc, fields=fields, required=required)


def oneof(*options: T, doc: str = "") -> T:
    return T("oneof", doc, options=options)


NAME = r"^[A-Za-z_][A-Za-z0-9_-]*$"

# ------------------------------------------------------------------------------ the format

TEXT = s(
    "Text to speak; Jinja2 template: {{ slot }}, {{ call.caller }}, {{ when | spoken_datetime }}"
)
EXPR = s("A Jinja2 expression without braces, e.g. `party_size > 8`")
REF = s("A node of this flow, `flow.node`, or a flow name (its start node)")
TIMEOUT = i("No-input timeout in milliseconds", minimum=0)

ESCALATION = lst(
    oneof(
        s("Say this, then repeat the prompt"),
        obj(
            "One escalation step",
            say=TEXT,
            reprompt=b("Repeat the node's prompt after `say` (default: true unless `goto`)"),
            goto=REF,
        ),
    ),
    "Escalating responses: the first entry on the 1st consecutive event, the second on the 2nd, "
    "...; the last entry repeats",
)

COMMON: dict[str, T] = {
    "say": TEXT,
    "barge_in": b(
        "May the caller interrupt this node's speech? (default: flow defaults, else true)"
    ),
    "description": s("A note for people reading the flow"),
}
INPUT: dict[str, T] = {
    "noinput": ESCALATION,
    "nomatch": ESCALATION,
    "timeout_ms": TIMEOUT,
    "help": TEXT,
}
ERRORS: dict[str, T] = {"on_error": REF}

DTMF_KEYS = s("DTMF keys, e.g. '1' or '*9'", pattern=r"^[0-9*#A-Da-d]+$")

BRANCH = obj(
    "A branch: taken when any of its conditions matches; a branch with no condition always does",
    required=("goto",),
    intent=oneof(s(), lst(s()), doc="Intent name(s) declared under `intents`"),
    dtmf=oneof(DTMF_KEYS, i(), lst(oneof(DTMF_KEYS, i())), doc="Key sequence(s)"),
    slot=s("A slot whose type parses the input; the slot is filled"),
    when=EXPR,
    goto=REF,
)

SLOT = obj(
    "A typed slot",
    required=("type",),
    type=s(
        "text, number, integer, yesno, date, time, datetime, phone, email, digits, enum, or a "
        "plugin type"
    ),
    prompt=TEXT,
    help=TEXT,
    invalid=TEXT,
    follow_up=s(
        "datetime: asked when the caller gave a day but no time; {{ value }} is the day "
        "(default: What time on {{ value | spoken_date }}?)"
    ),
    min=num("number/integer: smallest value"),
    max=num("number/integer: largest value"),
    pattern=s("text/digits: a regular expression the whole value must match"),
    length=i("digits: exact length", minimum=1),
    min_length=i("digits: minimum length", minimum=1),
    max_length=i("digits: maximum length", minimum=1),
    terminator=s("digits: the key ending DTMF entry, e.g. #"),
    values=oneof(lst(s()), mp(lst(s())), doc="enum: values, or value → synonyms"),
    check=EXPR,
)

INTENT = obj(
    "An intent",
    builtin=s(
        "A built-in intent whose examples and keywords this one starts from "
        "(docs/flows.md#built-in-intents); `examples` and `keywords` add to them",
        enum=tuple(builtin_intents()),
    ),
    examples=lst(s(), "Example phrases"),
    keywords=lst(s(), "Words that signal this intent"),
    description=s(),
)

DEFAULTS = obj(
    "Defaults for every node of this flow",
    barge_in=b(),
    timeout_ms=TIMEOUT,
    noinput=ESCALATION,
    nomatch=ESCALATION,
    on_error=REF,
)

FLOW = obj(
    "A voicebot flow file",
    required=("nodes",),
    flow=s("Flow name (default: the file name)", pattern=NAME),
    description=s(),
    start=s("The first node (default: the first one listed)"),
    slots=mp(SLOT, label="slot"),
    intents=mp(INTENT, label="intent"),
    defaults=DEFAULTS,
    anywhere=lst(
        BRANCH,
        "Branches tried at every ask and listen node of this flow, before the node's own "
        "(e.g. 'agent' or 0 for a person at any time)",
    ),
    nodes=mp(obj("A node; see flows/nodes/"), "The nodes, by name"),
)

# ----------------------------------------------------------------------------- checking


def did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "number": "a number",
    "bool": "true or false",
    "null": "empty",
    "list": "a list",
    "map": "a mapping",
    "object": "a mapping",
}


def describe(t: T) -> str:
    if t.kind == "oneof":
        return " or ".join(dict.fromkeys(describe(o) for o in t.options))
    return _TYPE_WORDS.get(t.kind, "a value")


def _shape_ok(t: T, value: Any) -> bool:
    k = t.kind
    if k == "any":
        return True
    if k == "str":
        return isinstance(value, str)
    if k == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if k == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if k == "bool":
        return isinstance(value, bool)
    if k == "null":
        return value is None
    if k == "list":
        return isinstance(value, list)
    if k in ("map", "object"):
        return isinstance(value, dict)
    return any(_shape_ok(o, value) for o in t.options)


def check(t: T, value: Any, path: Path_, src: Source, what: str) -> bool:
    """Report type problems of `value` at `path`; True when its shape is usable."""
    if t.kind == "oneof":
        for option in t.options:
            if _shape_ok(option, value):
                return check(option, value, path, src, what)
        src.problem(path, f"{what} must be {describe(t)}, not {_show(value)}")
        return False
    if not _shape_ok(t, value):
        src.problem(path, f"{what} must be {describe(t)}, not {_show(value)}")
        return False
    if t.enum and value not in t.enum:
        hint = did_you_mean(value, t.enum) if isinstance(value, str) else ""
        src.problem(
            path, f"{what} must be one of {', '.join(map(str, t.enum))}, not {value!r}{hint}"
        )
        return False
    if t.minimum is not None and value < t.minimum:
        src.problem(path, f"{what} must be at least {t.minimum:g}, not {value}")
        return False
    if t.kind == "list":
        ok = True
        for n, item in enumerate(value):
            ok &= check(t.item, item, (*path, n), src, f"item {n + 1} of {what}")  # type: ignore[arg-type]
        return ok
    if t.kind == "map":
        ok = True
        for key, item in value.items():
            name = f"{t.label} '{key}'" if t.label else f"'{key}' of {what}"
            ok &= check(t.item, item, (*path, key), src, name)  # type: ignore[arg-type]
        return ok
    if t.kind == "object":
        return check_fields(t.fields, t.required, value, path, src, what)
    return True


def check_fields(
    fields: dict[str, T],
    required: tuple[str, ...],
    value: dict,
    path: Path_,
    src: Source,
    what: str,
) -> bool:
    ok = True
    for key, item in value.items():
        if key not in fields:
            src.problem(
                (*path, key),
                f"unknown key '{key}' in {what}{did_you_mean(key, fields)}",
                key=True,
            )
            ok = False
            continue
        ok &= check(fields[key], item, (*path, key), src, f"'{key}' of {what}")
    for key in required:
        if key not in value:
            src.problem(path, f"{what} needs '{key}'")
            ok = False
    return ok


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()} (YAML reads yes/no/on/off as true/false: quote the word)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


# ------------------------------------------------------------------------------ JSON Schema


def to_schema(t: T) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if t.doc:
        out["description"] = t.doc
    k = t.kind
    if k == "oneof":
        out["anyOf"] = [to_schema(o) for o in t.options]
    elif k == "any":
        pass
    elif k == "list":
        out["type"] = "array"
        out["items"] = to_schema(t.item)  # type: ignore[arg-type]
    elif k == "map":
        out["type"] = "object"
        out["additionalProperties"] = to_schema(t.item)  # type: ignore[arg-type]
    elif k == "object":
        out["type"] = "object"
        out["properties"] = {name: to_schema(f) for name, f in t.fields.items()}
        out["additionalProperties"] = False
        if t.required:
            out["required"] = list(t.required)
    else:
        out["type"] = {"str": "string", "int": "integer", "bool": "boolean"}.get(k, k)
    if t.enum:
        out["enum"] = list(t.enum)
    if t.minimum is not None:
        out["minimum"] = t.minimum
    if t.pattern:
        out["pattern"] = t.pattern
    return out
