"""`voicebot` command line: run, check, plugins, chat, test, schema."""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__
from .config.options import ConfigError
from .dialer import add_parser as add_call_parser
from .plugins import PluginError, make_plugin_manager


def _config_arg(p: argparse.ArgumentParser, default: str | None = "config.yaml") -> None:
    """`--config PATH` on every command; `run`, `check` and `chat` also take it as the first
    argument (`voicebot run my.yaml`), the spelling the README has always shown."""
    if default is not None:
        p.add_argument(
            "config_path", nargs="?", metavar="config", help="path of config.yaml (or --config)"
        )
    where = f"default: {default}" if default else "default: none, built-in defaults"
    p.add_argument("--config", help=f"path of config.yaml ({where})")
    p.set_defaults(config_default=default)


def _resolve_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    positional = getattr(args, "config_path", None)
    if positional and args.config and positional != args.config:
        parser.error(f"two configs given ({positional} and --config {args.config}): pick one")
    args.config = args.config or positional or args.config_default


def _at_least_one(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voicebot", description=__doc__)
    parser.add_argument("--version", action="version", version=f"voicebot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the server")
    _config_arg(run)
    run.add_argument(
        "--host", help="address to listen on (default: server.host, 127.0.0.1: this machine only)"
    )
    run.add_argument(
        "--port", type=int, help="TCP port (default: server.port, 8080); 0 picks a free one"
    )
    run.add_argument(
        "--workers",
        type=_at_least_one,
        help="server processes sharing the port (default: one per core); see docs/performance.md",
    )
    run.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much to log (default: INFO); DEBUG also logs the /health polls",
    )
    check = sub.add_parser("check", help="validate config, plugins and flows; exit 1 on errors")
    _config_arg(check)
    plugins = sub.add_parser("plugins", help="list installed plugins and their providers")
    _config_arg(plugins, default=None)
    plugins.add_argument(
        "-v", "--verbose", action="store_true", help="also list each provider's options"
    )
    chat = sub.add_parser("chat", help="talk to a flow by typing")
    _config_arg(chat)
    chat.add_argument("--flow", help="the flow to start (default: flows.start)")
    chat.add_argument(
        "--now", help="pin the flow's clock to this ISO 8601 time (e.g. 2026-11-21T10:00)"
    )
    test = sub.add_parser("test", help="run YAML conversation tests")
    test.add_argument("paths", nargs="*", default=["flows/tests"], help="test files or directories")
    _config_arg(test, default=None)
    sub.add_parser("schema", help="print the JSON Schema of the flow format")
    from .bench.args import add_arguments

    add_arguments(sub.add_parser("bench", help="load-test a server: calls, turns, latency, CPU"))
    add_call_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .cluster.state import ClusterUnavailable
    from .flows.model import FlowError
    from .providers import ProviderError
    from .server.serve import StartupError

    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "config_default"):
        _resolve_config(parser, args)
    try:
        return _COMMANDS[args.command](args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
    except FlowError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
    except (PluginError, ProviderError, StartupError, ClusterUnavailable) as exc:
        # what the environment lacks (a module, a key, a free port): the message says what to
        # do, and a traceback would only bury it
        print(f"error: {exc}", file=sys.stderr)
    return 1


def cmd_run(args: argparse.Namespace) -> int:
    from .config import load_config
    from .server.serve import serve
    from .server.supervisor import default_workers, supervise

    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    cfg = load_config(args.config)
    problems = _check(cfg)
    if problems:
        raise ConfigError(problems)
    host = args.host or cfg.server.host
    port = args.port if args.port is not None else cfg.server.port
    workers = args.workers if args.workers is not None else default_workers()
    if workers > 1:
        argv = [str(args.config), "--log-level", args.log_level]
        return supervise(argv, host, port, workers)
    return serve(cfg, host, port, health_log=args.log_level == "DEBUG")


def _check(cfg) -> list:
    """Everything `voicebot check` verifies beyond the config file itself."""
    from .config import validate_providers
    from .config.options import Problem
    from .server.security import check_config

    pm = make_plugin_manager(cfg.plugins)
    validate_providers(cfg, pm.registry)
    problems: list[Problem] = check_config(cfg)
    if cfg.dialogue.mode == "flows":
        from .flows.loader import load_sources
        from .flows.validate import validate

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
            flowset, found = load_sources(flows_dir)
            found += validate(flowset, pm.registry)
            problems += [_FlowProblem(message) for message in found]
            problems += _start_problems(cfg, flowset)
    return problems


def _start_problems(cfg, flowset) -> list:
    """`flows.start` must name a flow, or every call would fail as it starts."""
    from .config.options import Problem, suggest

    start = cfg.flows.start
    if start in flowset.flows or start in flowset.broken:  # a broken file is reported already
        return []
    names = sorted(flowset.flows)
    return [
        Problem(
            cfg.source,
            cfg.line_of("flows.start"),
            "flows.start",
            f"no flow named '{start}'{suggest(start, names)} (flows: {', '.join(names)})",
        )
    ]


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
    for warning in transfers + _secret_warnings(cfg):
        print(warning, file=sys.stderr)
    print(f"{args.config}: OK")
    return 0


def _secret_warnings(cfg) -> list[str]:
    from .telephony.check import secret_warnings, tcp_door_warnings

    registry = make_plugin_manager(cfg.plugins).registry
    return secret_warnings(cfg, registry.transports) + tcp_door_warnings(cfg, registry.tcp_carriers)


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
    from .server.telephony import transfer_problems

    registry = make_plugin_manager(cfg.plugins).registry
    try:
        flowset = load_flows(cfg.resolve(cfg.flows.dir), registry)
    except FlowError:
        return []  # the flows' own problems are reported by _check
    steps = [
        n.where for f in flowset.flows.values() for n in f.nodes.values() if n.kind == "transfer"
    ]
    problems = transfer_problems(cfg, registry) if steps else []
    return [
        f"{where}: warning: this step transfers calls, but {p}" for where in steps for p in problems
    ]


def cmd_plugins(args: argparse.Namespace) -> int:
    from .config import load_config
    from .listing import describe

    extra = load_config(args.config).plugins if args.config else []
    print("\n".join(describe(make_plugin_manager(extra), verbose=args.verbose)))
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


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench.command import cmd_bench

    return cmd_bench(args)


def cmd_call(args: argparse.Namespace) -> int:
    from .dialer import main as call_main

    return call_main(args)


_COMMANDS = {
    "run": cmd_run,
    "check": cmd_check,
    "plugins": cmd_plugins,
    "chat": cmd_chat,
    "test": cmd_test,
    "schema": cmd_schema,
    "bench": cmd_bench,
    "call": cmd_call,
}

if __name__ == "__main__":
    sys.exit(main())
