"""Flow files → `Flow` objects, collecting every structural problem with its position.

Loading never stops at the first problem: a bot builder fixing a file wants the whole list. A node
with a broken part is still registered by name, so one typo does not cascade into a dozen
"does not exist" messages elsewhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from . import spec, templates
from .builtin_intents import intent_spec
from .model import Branch, Defaults, Escalation, Flow, FlowSet, Function, Node, Ref, SlotDecl
from .source import Path_, Source, read
from .templates import Expression, Template, TemplateError, compile_value

_NAME = re.compile(spec.NAME)


def flow_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))


def display_path(directory: Path, file: Path) -> str:
    """`flows/booking.yaml` rather than an absolute path when the file is under the cwd."""
    path = Path(directory) / file.name
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_sources(directory: Path) -> tuple[FlowSet, list[str]]:
    """Parse and compile every flow file; returns what could be built and all problems found."""
    flowset = FlowSet()
    problems: list[str] = []
    directory = Path(directory)
    if not directory.is_dir():
        return flowset, [f"{directory}:1:1: flow directory does not exist"]
    files = flow_files(directory)
    if not files:
        return flowset, [f"{directory}:1:1: no flow files (*.yaml) in this directory"]
    for path in files:
        src = read(path, display_path(directory, path))
        flow = _build_flow(src, path.stem) if not src.problems else None
        problems += src.problems
        if flow is None:
            if src.problems:
                name = src.data.get("flow") if isinstance(src.data, dict) else None
                where = src.problems[0].split(": ", 1)[0]
                flowset.broken[name if isinstance(name, str) else path.stem] = where
            continue
        if flow.name in flowset.flows:
            other = flowset.flows[flow.name]
            problems.append(
                f"{flow.where}: flow '{flow.name}' is already defined in {other.file}; "
                "give one of them another `flow:` name"
            )
            continue
        flowset.flows[flow.name] = flow
    return flowset, problems


class _Builder:
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


def _build_flow(src: Source, stem: str) -> Flow | None:
    data = src.data
    if data is None:
        src.problem((), "the file is empty; a flow needs at least `nodes:`")
        return None
    if not isinstance(data, dict):
        src.problem(
            (),
            "a flow file must be a mapping with `nodes:` (and optionally flow, start, "
            "slots, intents, defaults)",
        )
        return None
    top = {k: v for k, v in spec.FLOW.fields.items() if k != "nodes"}
    top["nodes"] = spec.mp(spec.anything())
    spec.check_fields(top, spec.FLOW.required, data, (), src, "the flow file")
    b = _Builder(src)
    name = data.get("flow") if isinstance(data.get("flow"), str) else stem
    if not _NAME.match(name):
        src.problem(
            ("flow",) if "flow" in data else (),
            f"flow name {name!r} must be a plain name "
            "(letters, digits, _ and -); rename the file or set `flow:`",
        )
    nodes_data = data.get("nodes") if isinstance(data.get("nodes"), dict) else {}
    start = data.get("start") if isinstance(data.get("start"), str) else next(iter(nodes_data), "")
    flow = Flow(name=name, file=src.file, where=src.where(()), start=start)
    if isinstance(data.get("slots"), dict):
        for slot_name, decl in data["slots"].items():
            if isinstance(decl, dict):
                flow.slots[slot_name] = _slot(b, slot_name, decl, ("slots", slot_name))
    if isinstance(data.get("intents"), dict):
        for intent_name, decl in data["intents"].items():
            if isinstance(decl, dict):
                intent = flow.intents[intent_name] = intent_spec(
                    intent_name,
                    decl.get("builtin") if isinstance(decl.get("builtin"), str) else None,
                    [x for x in decl.get("examples") or () if isinstance(x, str)],
                    [x for x in decl.get("keywords") or () if isinstance(x, str)],
                )
                if not (intent.examples or intent.keywords or "builtin" in decl):
                    src.problem(
                        ("intents", intent_name),
                        f"intent '{intent_name}' has no examples, keywords or builtin, so no "
                        "caller can ever match it: add `examples:` or name a `builtin:`",
                    )
    defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
    flow.defaults = Defaults(
        barge_in=defaults.get("barge_in", True)
        if isinstance(defaults.get("barge_in"), bool)
        else True,
        timeout_ms=defaults.get("timeout_ms", 6000)
        if isinstance(defaults.get("timeout_ms"), int)
        else 6000,
        noinput=b.escalation(defaults.get("noinput"), ("defaults", "noinput")) or [],
        nomatch=b.escalation(defaults.get("nomatch"), ("defaults", "nomatch")) or [],
        on_error=b.ref(defaults.get("on_error"), ("defaults", "on_error")),
    )
    if isinstance(data.get("anywhere"), list) and all(
        isinstance(x, dict) and "goto" in x for x in data["anywhere"]
    ):
        flow.anywhere = _branches(b, data["anywhere"], ("anywhere",))
    if not nodes_data and isinstance(data.get("nodes"), dict):
        src.problem(("nodes",), "`nodes:` is empty; a flow needs at least one node")
    for node_name, node_data in nodes_data.items():
        path = ("nodes", node_name)
        if not _NAME.match(node_name) or "." in node_name:
            src.problem(
                path,
                f"node name {node_name!r} must be a plain name (letters, digits, _ "
                "and -, no dots: dots separate a flow from a node)",
                key=True,
            )
        flow.nodes[node_name] = _node(b, flow.name, node_name, node_data, path)
    flow.uses = b.uses
    return flow


def _slot(b: _Builder, name: str, d: dict[str, Any], path: Path_) -> SlotDecl:
    values = d.get("values")
    if isinstance(values, list):
        values = {str(v): [] for v in values}
    elif isinstance(values, dict):
        values = {str(k): [str(x) for x in v] for k, v in values.items() if isinstance(v, list)}
    else:
        values = {}
    pattern = None
    if isinstance(d.get("pattern"), str):
        try:
            pattern = re.compile(d["pattern"])
        except re.error as exc:
            b.src.problem((*path, "pattern"), f"invalid regular expression: {exc}")

    def num(key: str) -> Any:
        v = d.get(key)
        return v if isinstance(v, int | float) and not isinstance(v, bool) else None

    return SlotDecl(
        name=name,
        type=d.get("type") if isinstance(d.get("type"), str) else "text",
        where=b.where(path),
        prompt=b.template(d.get("prompt"), (*path, "prompt")),
        help=b.template(d.get("help"), (*path, "help")),
        invalid=b.template(d.get("invalid"), (*path, "invalid")),
        follow_up=b.template(d.get("follow_up"), (*path, "follow_up")),
        min=num("min"),
        max=num("max"),
        pattern=pattern,
        length=num("length"),
        min_length=num("min_length"),
        max_length=num("max_length"),
        terminator=d.get("terminator") if isinstance(d.get("terminator"), str) else None,
        values=values,
        check=b.expression(d.get("check"), (*path, "check")),
    )


def _node_kind(b: _Builder, name: str, data: dict[str, Any], path: Path_) -> str | None:
    kinds = [k for k in spec.KIND_KEYS if k in data]
    if len(kinds) > 1:
        b.src.problem(
            (*path, kinds[1]),
            f"node '{name}' has both `{kinds[0]}` and `{kinds[1]}`; a node does one thing: "
            "split it into two nodes",
            key=True,
        )
        return None
    if kinds:
        return kinds[0]
    if "say" in data:
        return "say"
    unknown = [k for k in data if k not in spec.NODE_FIELDS]
    hint = spec.did_you_mean(unknown[0], spec.KINDS) if unknown else ""
    b.src.problem(
        path,
        f"node '{name}' does nothing: give it `say:` or one of {', '.join(spec.KIND_KEYS)}{hint}",
    )
    return None


def _node(b: _Builder, flow: str, name: str, data: Any, path: Path_) -> Node:
    node = Node(name=name, flow=flow, kind="invalid", where=b.where(path))
    if not isinstance(data, dict):
        b.src.problem(
            path, f"node '{name}' must be a mapping (say:, next:, ...), not {spec._show(data)}"
        )
        return node
    kind = _node_kind(b, name, data, path)
    if kind is None:
        return node
    fields = {**spec.COMMON, **spec.KINDS[kind]}
    if not spec.check_fields(
        fields, spec.REQUIRED.get(kind, ()), data, path, b.src, f"{kind} node '{name}'"
    ):
        return node
    node.kind = kind
    node.say = b.template(data.get("say"), (*path, "say"))
    node.barge_in = data.get("barge_in")
    node.next = b.ref(data.get("next"), (*path, "next"))
    node.noinput = b.escalation(data.get("noinput"), (*path, "noinput"))
    node.nomatch = b.escalation(data.get("nomatch"), (*path, "nomatch"))
    node.timeout_ms = data.get("timeout_ms")
    node.help = b.template(data.get("help"), (*path, "help"))
    node.on_error = b.ref(data.get("on_error"), (*path, "on_error"))
    _KIND_BUILDERS.get(kind, lambda *a: None)(b, node, data, path)
    return node


def _build_ask(b: _Builder, node: Node, data: dict, path: Path_) -> None:
    slots = data["ask"]
    node.slots = (slots,) if isinstance(slots, str) else tuple(slots)
    node.confirm = b.template(data.get("confirm"), (*path, "confirm"))
    node.reask = bool(data.get("reask", False))


def _build_listen(b: _Builder, node: Node, data: dict, path: Path_) -> None:
    node.branches = _branches(b, data["listen"], (*path, "listen"))
    rules = data.get("dtmf") or {}
    node.dtmf_max_digits = rules.get("max_digits")
    node.dtmf_terminator = rules.get("terminator")
    node.dtmf_timeout_ms = rules.get("timeout_ms")


def _branches(b: _Builder, data: list, path: Path_) -> list[Branch]:
    out = []
    for n, branch in enumerate(data):
        bpath = (*path, n)
        intents = branch.get("intent", ())
        dtmf = branch.get("dtmf")
        dtmf = [] if dtmf is None else dtmf if isinstance(dtmf, list) else [dtmf]
        out.append(
            Branch(
                where=b.where(bpath),
                goto=b.ref(branch["goto"], (*bpath, "goto")),  # type: ignore[arg-type]
                intents=(intents,) if isinstance(intents, str) else tuple(intents),
                dtmf=tuple(str(x) for x in dtmf),
                slot=branch.get("slot"),
                when=b.expression(branch.get("when"), (*bpath, "when")),
            )
        )
    return out


def _build_llm(b: _Builder, node: Node, data: dict, path: Path_) -> None:
    llm = data["llm"]
    node.system = b.template(llm["system"], (*path, "llm", "system"))
    node.max_rounds = llm.get("max_rounds", 4)
    node.context_tokens = llm.get("context_tokens", 3000)
    for fname, f in (llm.get("functions") or {}).items():
        fpath = (*path, "llm", "functions", fname)
        params = {
            p: ({"type": v} if isinstance(v, str) else dict(v))
            for p, v in (f.get("parameters") or {}).items()
        }
        node.functions[fname] = Function(
            fname, f["description"], params, b.ref(f.get("goto"), (*fpath, "goto")), f.get("action")
        )
        if f.get("goto") is None and f.get("action") is None:
            b.src.problem(fpath, f"function '{fname}' needs `goto:` (a transition) or `action:`")


def _build_action(b: _Builder, node: Node, data: dict, path: Path_) -> None:
    node.action = data["action"]
    node.args = b.values(data.get("args") or {}, (*path, "args"))
    node.result = data.get("result")
    node.timeout_ms = data.get("timeout_ms")


def _build_http(b: _Builder, node: Node, data: dict, path: Path_) -> None:
    http = data["http"]
    node.http = {
        "url": b.template(http["url"], (*path, "http", "url")),
        "method": http.get("method", "GET"),
        "headers": b.values(http.get("headers") or {}, (*path, "http", "headers")),
        "query": b.values(http.get("query") or {}, (*path, "http", "query")),
        "json": b.values(http.get("json"), (*path, "http", "json")),
        "timeout_ms": http.get("timeout_ms", 5000),
    }
    node.mapping = dict(data.get("map") or {})
    node.result = data.get("result")


def _build_set(b: _Builder, node: Node, data: dict, path: Path_) -> None:
    node.assign = b.values(data["set"], (*path, "set"))


def _build_if(b: _Builder, node: Node, data: dict, path: Path_) -> None:
    node.condition = b.expression(data["if"], (*path, "if"))
    node.then = b.ref(data["then"], (*path, "then"))
    node.otherwise = b.ref(data["else"], (*path, "else"))


def _build_switch(b: _Builder, node: Node, data: dict, path: Path_) -> None:
    node.condition = b.expression(data["switch"], (*path, "switch"))
    node.cases = {str(k): b.ref(v, (*path, "cases", k)) for k, v in data["cases"].items()}  # type: ignore[misc]
    node.default = b.ref(data.get("default"), (*path, "default"))


def _build_goto(b: _Builder, node: Node, data: dict, path: Path_) -> None:
    node.target = b.ref(data[node.kind], (*path, node.kind))


def _build_transfer(b: _Builder, node: Node, data: dict, path: Path_) -> None:
    node.transfer = b.template(data["transfer"], (*path, "transfer"))
    node.mode = data.get("mode", "cold")


def _build_hangup(b: _Builder, node: Node, data: dict, path: Path_) -> None:
    node.reason = data["hangup"] or "completed"


_KIND_BUILDERS = {
    "ask": _build_ask,
    "listen": _build_listen,
    "llm": _build_llm,
    "action": _build_action,
    "http": _build_http,
    "set": _build_set,
    "if": _build_if,
    "switch": _build_switch,
    "goto": _build_goto,
    "call": _build_goto,
    "transfer": _build_transfer,
    "hangup": _build_hangup,
}
