"""The pre-stop hook: `python -m voicebot.cluster.drain --port 8080 --grace 30`.

Asks the instance on this host to stop taking calls (its readiness turns 503, so the load
balancer sends new calls elsewhere), then waits until its calls have ended or `--grace` seconds
have passed. Kubernetes sends SIGTERM after it returns; by then there is little left to drain.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request


def _get(url: str, method: str = "GET") -> dict:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=2) as response:
        return json.loads(response.read())


def drain(port: int, grace_s: float, poll_s: float = 0.5) -> int:
    base = f"http://127.0.0.1:{port}"
    try:
        answer = _get(f"{base}/drain", "POST")
    except (OSError, urllib.error.URLError) as exc:
        print(f"drain: instance not reachable on port {port}: {exc}", file=sys.stderr)
        return 0  # nothing to drain: let the termination go on
    print(f"drain: {answer['active_calls']} calls in progress", flush=True)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            calls = _get(f"{base}/health")["active_calls"]
        except (OSError, urllib.error.URLError):
            return 0  # it stopped
        if calls == 0:
            print("drain: no call left", flush=True)
            return 0
        time.sleep(poll_s)  # a separate process, not the server's loop
    print(f"drain: {grace_s:g} s passed with calls in progress", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--grace", type=float, default=30.0, help="seconds to wait for calls")
    args = parser.parse_args(argv)
    return drain(args.port, args.grace)


if __name__ == "__main__":
    sys.exit(main())
