"""Flow files → `Flow` objects, collecting every structural problem with its position.

Loading never stops at the first problem: a bot builder fixing a file wants the whole list. A node
with a broken part is still registered by name, so one typo does not cascade into a dozen
"does not exist" messages elsewhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from . import spec
from .builder import Builder
from .builtin_intents import intent_spec
from .model import Defaults, Flow, FlowSet, Node, SlotDecl
from .nodes import kind_keys, kinds
from .source import Path_, Source, read

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
    b = Builder(src)
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
        flow.anywhere = b.branches(data["anywhere"], ("anywhere",))
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


def _slot(b: Builder, name: str, d: dict[str, Any], path: Path_) -> SlotDecl:
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


def _node_kind(b: Builder, name: str, data: dict[str, Any], path: Path_) -> str | None:
    keys = kind_keys()
    found = [k for k in keys if k in data]
    if len(found) > 1:
        b.src.problem(
            (*path, found[1]),
            f"node '{name}' has both `{found[0]}` and `{found[1]}`; a node does one thing: "
            "split it into two nodes",
            key=True,
        )
        return None
    if found:
        return found[0]
    if "say" in data:
        return "say"
    every = {**spec.COMMON, **{k: t for kind in kinds().values() for k, t in kind.fields.items()}}
    unknown = [k for k in data if k not in every]
    hint = spec.did_you_mean(unknown[0], kinds()) if unknown else ""
    b.src.problem(
        path,
        f"node '{name}' does nothing: give it `say:` or one of {', '.join(keys)}{hint}",
    )
    return None


def _node(b: Builder, flow: str, name: str, data: Any, path: Path_) -> Node:
    node = Node(name=name, flow=flow, kind="invalid", where=b.where(path))
    if not isinstance(data, dict):
        b.src.problem(
            path, f"node '{name}' must be a mapping (say:, next:, ...), not {spec._show(data)}"
        )
        return node
    name_of_kind = _node_kind(b, name, data, path)
    if name_of_kind is None:
        return node
    kind = kinds()[name_of_kind]
    fields = {**spec.COMMON, **kind.fields}
    if not spec.check_fields(
        fields, kind.required, data, path, b.src, f"{kind.name} node '{name}'"
    ):
        return node
    node.kind = kind.name
    node.say = b.template(data.get("say"), (*path, "say"))
    node.barge_in = data.get("barge_in")
    node.next = b.ref(data.get("next"), (*path, "next"))
    node.noinput = b.escalation(data.get("noinput"), (*path, "noinput"))
    node.nomatch = b.escalation(data.get("nomatch"), (*path, "nomatch"))
    node.timeout_ms = data.get("timeout_ms")
    node.help = b.template(data.get("help"), (*path, "help"))
    node.on_error = b.ref(data.get("on_error"), (*path, "on_error"))
    kind.build(b, node, data, path)
    return node
