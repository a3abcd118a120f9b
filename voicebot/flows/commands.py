"""`voicebot chat`, `voicebot test` and `voicebot schema`: working on flows without audio.

Both chat and test start the providers the flows need (intent classifier, LLM) the way `voicebot
run` does, through `Runtime.start_providers` (fallback chains, the worker pool, deadlines); without
a configured classifier, intents use the `keyword` one and llm nodes report that no LLM is
configured.
"""

from __future__ import annotations

import asyncio
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from ..dialogue import DialogueContext, Hangup, IntentEvent, Listen, Note, Say, Transfer, UserInput
from ..dialogue.sentences import join_pieces
from .library import load_flows
from .model import FlowError
from .runner import FlowDialogue
from .testing import load_test_file, parse_now, run_test


def schema_main(stdout: TextIO = sys.stdout) -> int:
    stdout.write(resources.files("voicebot.flows").joinpath("schema.json").read_text("utf-8"))
    return 0


# ------------------------------------------------------------------------------ settings

FLOW_ROLES = ("intent", "llm")  # the providers a flow uses without audio


class Settings:
    """The parts of config.yaml that flow tooling needs, plus the runtime holding its providers.

    With a config file, it is read and validated by `voicebot.config` exactly as `voicebot run`
    does; without one, flows come from ./flows and intents use the `keyword` classifier.
    """

    def __init__(self, config_path: str | None) -> None:
        from ..config import Config, load_config

        self.config: Config = load_config(config_path) if config_path else Config()
        self.configured = config_path is not None
        self.flows_dir = Path("flows")
        if config_path:
            self.flows_dir = self.config.resolve(self.config.flows.dir)
        self.start = self.config.flows.start
        self.timezone = self.config.flows.timezone
        self.runtime: Any = None
        self.registry: Any = None

    async def build(self) -> None:
        from ..runtime import Runtime

        self.runtime = Runtime(self.config)
        self.registry = self.runtime.registry
        await self.runtime.start_providers(FLOW_ROLES)

    def context(self, call_id: str, variables: dict[str, Any] | None = None) -> DialogueContext:
        return self.runtime.dialogue_context(call_id, dict(variables or {}))

    async def aclose(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()


# ---------------------------------------------------------------------------------- chat


def chat_main(
    config_path: str | None,
    flow: str | None,
    *,
    now: str | None = None,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
) -> int:
    """Type to the bot; `/dtmf 12#` presses keys, an empty line is silence, `/quit` ends.

    `now` (ISO 8601) pins the clock the flow sees, so "tomorrow at 8pm" resolves the same way on
    every day: what a YAML conversation test's `now:` does, for a typed session.
    """
    if config_path and not Path(config_path).exists():
        stdout.write(f"note: {config_path} not found: using ./flows and keyword intents\n")
        config_path = None
    return asyncio.run(_chat(config_path, flow, now, stdin, stdout))


async def _chat(
    config_path: str | None, flow: str | None, now: str | None, stdin: TextIO, stdout: TextIO
) -> int:
    try:
        settings = Settings(config_path)
        await settings.build()
        flows = load_flows(settings.flows_dir, settings.registry)
    except FlowError as exc:
        stdout.write("\n".join(exc.problems) + "\n")
        return 1
    except Exception as exc:  # a bad config or a provider that cannot start: say why
        stdout.write(f"error: {exc}\n")
        return 2
    name = flow or settings.start
    if name not in flows.flows:
        stdout.write(f"error: no flow named '{name}'; flows: {', '.join(sorted(flows.flows))}\n")
        return 2
    stdout.write(
        f"chatting with flow '{name}'. Empty line = silence, /dtmf 12# = keys, /slots, /quit\n"
    )
    try:
        pinned = parse_now(now, settings.timezone)
    except ValueError:
        stdout.write(f"error: --now {now!r} is not an ISO 8601 time (e.g. 2026-11-21T10:00)\n")
        return 2
    clock = (lambda tz: pinned.astimezone(tz)) if pinned else None
    d = FlowDialogue(flows, settings.context("chat"), name, clock=clock, timezone=settings.timezone)
    try:
        ended = await _show(d.start(), stdout)
        while not ended:
            stdout.write("you> ")
            stdout.flush()
            line = await asyncio.to_thread(stdin.readline)
            if not line or line.strip() in ("/quit", "/exit"):
                break
            text = line.strip()
            if text == "/slots":
                stdout.write(f"  slots: {json.dumps(d.snapshot()['slots'])}\n")
                continue
            if text.startswith("/dtmf"):
                event = UserInput("dtmf", digits=text[5:].strip())
            elif not text:
                event = UserInput("noinput")
            else:
                event = UserInput("text", text=text)
            ended = await _show(d.handle(event), stdout)
    finally:
        await settings.aclose()
    return 0


async def _show(stream: Any, out: TextIO) -> bool:
    said: list[tuple[str, bool]] = []
    ended = False

    def flush() -> None:
        if said:
            out.write("bot> " + " ".join(join_pieces(said).split()) + "\n")
            said.clear()

    async for item in stream:
        if isinstance(item, Say):
            said.append((item.text, item.delta))
            continue
        flush()
        if isinstance(item, Note) and item.kind == "node":
            out.write(f"  → {item.data['flow']}.{item.data['node']} ({item.data['kind']})\n")
        elif isinstance(item, Note) and item.kind in ("slots", "vars"):
            out.write(f"  {item.kind}: {json.dumps(item.data[item.kind], default=str)}\n")
        elif isinstance(item, Note):
            out.write(f"  {item.kind}: {json.dumps(item.data, default=str)}\n")
        elif isinstance(item, IntentEvent):
            out.write(f"  intent: {item.intent} ({item.confidence:.2f})\n")
        elif isinstance(item, Transfer):
            out.write(f"  [transfer to {item.target} ({item.mode})]\n")
            ended = True
        elif isinstance(item, Hangup):
            out.write(f"  [hangup: {item.reason}]\n")
            ended = True
        elif isinstance(item, Listen):
            pass
    flush()
    return ended


# ---------------------------------------------------------------------------------- test


def test_main(paths: list[str], config_path: str | None, *, stdout: TextIO = sys.stdout) -> int:
    """Run conversation tests; exit status 1 when any fails, 2 when none could run."""
    return asyncio.run(_test(paths, config_path, stdout))


def _test_files(paths: list[str], settings: Settings) -> list[Path]:
    roots = [Path(p) for p in paths] or [settings.flows_dir / "tests"]
    files: list[Path] = []
    for root in roots:
        if root.is_dir():
            files += sorted(p for p in root.rglob("*.y*ml") if p.suffix in (".yaml", ".yml"))
        else:
            files.append(root)
    return files


def _flows_dir_for(path: Path, data: dict[str, Any], settings: Settings) -> Path:
    if "flows" in data:
        return (path.parent / str(data["flows"])).resolve()
    if settings.configured:
        return settings.flows_dir
    return path.parent.parent if path.parent.name == "tests" else path.parent


async def _test(paths: list[str], config_path: str | None, stdout: TextIO) -> int:
    try:
        settings = Settings(config_path)
        await settings.build()
    except Exception as exc:
        stdout.write(f"error: {exc}\n")
        return 2
    files = _test_files(paths, settings)
    if not files:
        stdout.write("no conversation tests found (flows/tests/*.yaml)\n")
        return 2
    passed = failed = 0
    cache: dict[Path, Any] = {}
    try:
        for path in files:
            data, error = load_test_file(path) if path.exists() else (None, f"{path}: no such file")
            if data is None:
                stdout.write(f"ERROR {error}\n")
                failed += 1
                continue
            flows_dir = _flows_dir_for(path, data, settings)
            if flows_dir not in cache:
                try:
                    cache[flows_dir] = load_flows(flows_dir, settings.registry)
                except FlowError as exc:
                    cache[flows_dir] = exc
            flows = cache[flows_dir]
            if isinstance(flows, FlowError):
                stdout.write(f"ERROR {path}: the flows in {flows_dir} do not load:\n")
                stdout.write("".join(f"  {p}\n" for p in flows.problems))
                failed += len(data["tests"])
                continue
            timezone = str(data.get("timezone", settings.timezone))
            for n, test in enumerate(data["tests"]):
                if not isinstance(test, dict):
                    stdout.write(f"ERROR {path}: test {n + 1} must be a mapping\n")
                    failed += 1
                    continue
                now = parse_now(test.get("now", data.get("now")), timezone)
                ctx = settings.context(f"test-{n}", test.get("variables") or data.get("variables"))
                outcome = await run_test(
                    flows,
                    test,
                    ctx,
                    flow=str(data.get("flow", settings.start)),
                    timezone=timezone,
                    now=now,
                    file=str(path),
                )
                if outcome.failures:
                    failed += 1
                    stdout.write(f"FAIL {path}: {outcome.name}\n")
                    stdout.write("".join(f"  {f}\n" for f in outcome.failures))
                    stdout.write("  conversation:\n")
                    stdout.write("".join(f"  {line}\n" for line in outcome.transcript))
                else:
                    passed += 1
                    stdout.write(f"ok   {path}: {outcome.name}\n")
    finally:
        await settings.aclose()
    stdout.write(f"{passed} passed, {failed} failed\n")
    return 1 if failed else 0
