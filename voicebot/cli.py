"""`voicebot` command line: run, check, plugins, chat, test, schema."""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__
from .options import ConfigError
from .plugins import PluginError, make_plugin_manager


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", default="config.yaml", help="path of config.yaml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voicebot", description=__doc__)
    parser.add_argument("--version", action="version", version=f"voicebot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the server")
    _config_arg(run)
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    run.add_argument("--log-level", default="INFO")
    check = sub.add_parser("check", help="validate config, plugins and flows; exit 1 on errors")
    _config_arg(check)
    plugins = sub.add_parser("plugins", help="list installed plugins and their providers")
    plugins.add_argument("--config", default=None)
    chat = sub.add_parser("chat", help="talk to a flow by typing")
    _config_arg(chat)
    chat.add_argument("--flow")
    chat.add_argument(
        "--now", help="pin the flow's clock to this ISO 8601 time (e.g. 2026-11-21T10:00)"
    )
    test = sub.add_parser("test", help="run YAML conversation tests")
    test.add_argument("paths", nargs="*", default=["flows/tests"])
    test.add_argument("--config", default=None)
    sub.add_parser("schema", help="print the JSON Schema of the flow format")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (ConfigError, PluginError) as exc:
        print(f"error: {exc}" if isinstance(exc, PluginError) else str(exc), file=sys.stderr)
        return 1


def cmd_run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from .config import load_config
    from .runtime import Runtime
    from .server import create_app

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    cfg = load_config(args.config)
    problems = _check(cfg)
    if problems:
        raise ConfigError(problems)
    runtime = Runtime(cfg)
    host = args.host or cfg.server.host
    port = args.port if args.port is not None else cfg.server.port
    web.run_app(
        create_app(runtime),
        host=host,
        port=port,
        shutdown_timeout=cfg.server.drain_grace_s + 5,
        print=lambda _: print(f"voicebot {__version__} listening on http://{host}:{port}"),
    )
    return 0


def _check(cfg) -> list:
    """Everything `voicebot check` verifies beyond the config file itself."""
    from .config import validate_providers
    from .options import Problem
    from .security import check_config

    pm = make_plugin_manager(cfg.plugins)
    validate_providers(cfg, pm.registry)
    problems: list[Problem] = check_config(cfg)
    if cfg.dialogue.mode == "flows":
        try:
            from .flows import check_flows
        except ImportError:
            return problems
        flows_dir = cfg.resolve(cfg.flows.dir)
        if not flows_dir.is_dir():
            problems.append(
                Problem(
                    cfg.source,
                    cfg.line_of("flows.dir"),
                    "flows.dir",
                    f"directory '{flows_dir}' does not exist; create it with your flow files, "
                    "point flows.dir at them, or set dialogue.mode: llm",
                )
            )
        else:
            problems += [_FlowProblem(message) for message in check_flows(flows_dir, pm.registry)]
    return problems


class _FlowProblem(str):
    """A flow problem is already formatted `file:line:col: message` by the flow validator."""


def cmd_check(args: argparse.Namespace) -> int:
    from .config import load_config

    cfg = load_config(args.config)
    problems = _check(cfg)
    transfers, phones = _transfer_problems(cfg), _takes_phone_calls(cfg)
    if phones:
        problems += [_FlowProblem(t.replace(": warning: ", ": ", 1)) for t in transfers]
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    for warning in transfers:
        print(warning, file=sys.stderr)
    print(f"{args.config}: OK")
    return 0


def _takes_phone_calls(cfg) -> bool:
    """A deployment set up for phone calls: a public URL or a telephony credential is set."""
    if cfg.server.public_url:
        return True
    return any(
        getattr(opts, "auth_token", "") or getattr(opts, "account_sid", "")
        for opts in (cfg.telephony or {}).values()
    )


def _transfer_problems(cfg) -> list[str]:
    """Flow steps that transfer calls while no telephony provider could carry a transfer out.

    An error for a deployment that takes phone calls (`_takes_phone_calls`); a warning for a
    browser-only one, which never transfers but may share its flows with one that does."""
    if cfg.dialogue.mode != "flows":
        return []
    from .flows.library import load_flows
    from .flows.model import FlowError
    from .transports.telephony import transfer_problems

    registry = make_plugin_manager(cfg.plugins).registry
    try:
        flowset = load_flows(cfg.resolve(cfg.flows.dir), registry)
    except FlowError:
        return []  # the flows' own problems are reported by _check
    steps = [n.where for f in flowset.flows.values() for n in f.nodes.values() if n.transfer]
    problems = transfer_problems(cfg, registry) if steps else []
    return [
        f"{where}: warning: this step transfers calls, but {p}" for where in steps for p in problems
    ]


def cmd_plugins(args: argparse.Namespace) -> int:
    from .config import load_config

    extra = load_config(args.config).plugins if args.config else []
    pm = make_plugin_manager(extra)
    reg = pm.registry
    by_plugin: dict[str, list[str]] = {}
    for (kind, name), owner in sorted(reg.owners.items()):
        by_plugin.setdefault(owner, []).append(f"{kind}:{name}")
    for plugin in pm.plugin_names():
        provided = by_plugin.get(plugin, [])
        print(f"{plugin}: {', '.join(provided) if provided else '(lifecycle hooks only)'}")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from .flows.commands import chat_main

    return chat_main(args.config, args.flow, now=args.now, stdin=sys.stdin, stdout=sys.stdout)


def cmd_test(args: argparse.Namespace) -> int:
    from .flows.commands import test_main

    return test_main(args.paths, args.config, stdout=sys.stdout)


def cmd_schema(args: argparse.Namespace) -> int:
    from .flows.commands import schema_main

    return schema_main(sys.stdout)


_COMMANDS = {
    "run": cmd_run,
    "check": cmd_check,
    "plugins": cmd_plugins,
    "chat": cmd_chat,
    "test": cmd_test,
    "schema": cmd_schema,
}

if __name__ == "__main__":
    sys.exit(main())
