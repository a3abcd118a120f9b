"""`voicebot run`: listen, start the runtime, say where the page is, drain on Ctrl-C/SIGTERM.

The port is bound before any model loads, so a port in use is reported at once (and in one line)
rather than after seconds of loading and a traceback from deep inside asyncio.
"""

from __future__ import annotations

import errno
import os
import socket
import sys

from aiohttp import web
from aiohttp.web_log import AccessLogger

from .. import __version__
from ..config import Config
from .connections import limits_from, run_app


def say(line: str) -> None:
    """One line on stdout in one write: the workers of `--workers N` share the stream, and
    print()'s separate write of the newline let two workers' lines run together."""
    sys.stdout.write(line + "\n")  # a TextIOWrapper hands one string to one buffer flush
    sys.stdout.flush()


class StartupError(Exception):
    """The server cannot start for a reason in its environment; the message says what to do."""


class QuietHealthLog(AccessLogger):
    """The access log without successful `/health` polls: a load balancer probing every few
    seconds would bury the requests worth reading. `--log-level debug` logs them too."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if request.path == "/health" and response.status < 400:
            return
        super().log(request, response, time)


def listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """The server's listening socket, or a `StartupError` naming the port and the fix.
    `reuse_port`: one of the workers of `--workers N`, which all listen on the same port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=512, reuse_port=reuse_port)
    except OSError as exc:
        where = f"port {port} on {host}"
        why = (exc.strerror or str(exc)).split(" (while attempting")[0]
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"{where} is already in use (another voicebot?): stop the other process, or "
                f"start this one on another port with --port {port + 1 if port else 8081} "
                "(or server.port in config.yaml)"
            ) from None
        if exc.errno == errno.EACCES:
            raise StartupError(
                f"no permission to listen on {where}: ports below 1024 need privileges; "
                "use --port 8080 (or server.port in config.yaml)"
            ) from None
        raise StartupError(
            f"cannot listen on {where}: {why}; check --host "
            "(or server.host in config.yaml): 127.0.0.1 for this machine only, 0.0.0.0 for all "
            "interfaces"
        ) from None


def page_url(host: str, port: int) -> str:
    """Where a browser on this machine finds the page (a wildcard host is not an address)."""
    if host in ("", "0.0.0.0", "::"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def serve(cfg: Config, host: str, port: int, *, health_log: bool = False) -> int:
    """Run until Ctrl-C or SIGTERM; calls in progress get `server.drain_grace_s` to finish."""
    from ..runtime import Runtime
    from . import siblings as workers
    from .app import create_app

    cluster_dir = os.environ.get(workers.CLUSTER_DIR_ENV)  # set by the supervisor of --workers
    sock = listen(host, port, reuse_port=bool(cluster_dir))
    try:
        runtime = Runtime(cfg)
        app = create_app(runtime)
        cluster = workers.Cluster.from_env(runtime)
        if cluster is not None:
            workers.install(app, cluster)
    except BaseException:
        sock.close()
        raise
    grace = cfg.server.drain_grace_s
    port = sock.getsockname()[1]  # the one the system chose, with --port 0
    url = page_url(host, port)

    who = "" if cluster is None else f"worker {cluster.index} (pid {cluster.pid}): "

    async def announce_drain(app: web.Application) -> None:
        n = len(runtime.calls)
        plural = "" if n == 1 else "s"
        say(f"{who}stopping: draining {n} call{plural} (up to {grace:g} s)")

    app.on_shutdown.insert(0, announce_drain)

    def banner() -> None:
        if cluster is not None:  # the supervisor speaks for all its workers
            cluster.listening()
            return
        shown = f"[{host}]" if ":" in host else host
        print(f"voicebot {__version__} listening on http://{shown}:{port}", flush=True)
        print(f"open {url} in a browser and press Start call (Ctrl-C to stop)", flush=True)

    kwargs = {} if health_log else {"access_log_class": QuietHealthLog}
    run_app(
        app, limits_from(cfg), sock=sock, shutdown_timeout=grace + 5, on_listening=banner, **kwargs
    )
    return 0
