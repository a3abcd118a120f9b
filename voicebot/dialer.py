"""`voicebot call +15551234567 --flow reminder`: ask a running server to place an outbound call.

The server does the work (`POST /api/v1/calls`: it owns the carrier credentials and answers the
call when it is picked up); this is a thin HTTP client, stdlib only, so it runs anywhere the
`voicebot` command does. Progress is then at `GET /api/v1/calls/{id}` (`--wait` polls it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any, TextIO

POLL_S = 1.0


def add_parser(sub: Any) -> None:
    call = sub.add_parser("call", help="place an outbound call through the running server")
    call.add_argument("to", help="the number to call, E.164 (+15551234567)")
    call.add_argument("--from", dest="from_", required=True, help="your carrier number, E.164")
    call.add_argument("--flow", help="the flow the call starts in (default: flows.start)")
    call.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", help="a call variable"
    )
    call.add_argument("--carrier", help="when several configured carriers can place calls")
    call.add_argument(
        "--server", default="http://127.0.0.1:8080", help="the running server's base URL"
    )
    call.add_argument(
        "--api-key",
        default=os.environ.get("VOICEBOT_API_KEY", ""),
        help="a security.auth key (default: $VOICEBOT_API_KEY)",
    )
    call.add_argument("--wait", action="store_true", help="poll until the call has an outcome")


def _request(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if args.api_key:
        headers["Authorization"] = f"Bearer {args.api_key}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        args.server.rstrip("/") + path, data=data, headers=headers, method=method
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            err = json.loads(exc.read() or b"{}")
        except ValueError:
            err = {}
        message = f"{exc.code} {err.get('code', '')}: {err.get('message', exc.reason)}"
        raise CallError(message) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CallError(f"cannot reach {args.server}: {exc}") from None


class CallError(Exception):
    pass


def main(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    variables = {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"error: --var {item!r} is not NAME=VALUE", file=sys.stderr)
            return 2
        variables[name] = value
    body: dict[str, Any] = {"to": args.to, "from": args.from_, "variables": variables}
    if args.flow:
        body["flow"] = args.flow
    if args.carrier:
        body["carrier"] = args.carrier
    try:
        call = _request(args, "POST", "/api/v1/calls", body)
        while args.wait and call.get("outcome") is None:
            time.sleep(POLL_S)  # a CLI, not the event loop: a plain poll is fine
            call = _request(args, "GET", f"/api/v1/calls/{call['id']}")
    except CallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(call, indent=2), file=out)
    return 0
