"""`voicebot run --workers N`: N server processes on one port, so every core takes calls.

One Python process uses one core for its event loop, however many the machine has. The
supervisor starts N complete workers (`voicebot run --workers 1`, each loading its engines once)
that all listen on the same port with SO_REUSEPORT, so the kernel spreads new connections over
them. It holds the port itself (bound, never listening) so that `--port 0` picks one port for all
and a restarted worker gets it back. It restarts a worker that dies, and on SIGTERM/SIGINT passes
the signal on and waits while every worker drains its calls (`server.drain_grace_s`).

It owns two private directories, made fresh at start and removed at exit: the cluster's state
(each worker's unix socket for `/health` and `/calls` aggregation, see `siblings.py`) and, inside
it, `PROMETHEUS_MULTIPROC_DIR` for prometheus_client's multiprocess mode.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .. import __version__
from .serve import StartupError, page_url
from .siblings import CLUSTER_DIR_ENV, WORKER_COUNT_ENV, WORKER_INDEX_ENV, ready_path

PROMETHEUS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
START_TIMEOUT_S = 300.0  # engines may download and load models on first start
#: a worker that dies sooner than this after starting is crashing, not unlucky: back off
CRASH_WINDOW_S = 10.0
MAX_BACKOFF_S = 30.0
POLL_S = 0.1


def default_workers() -> int:
    """One per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (without listening) with SO_REUSEPORT: fixes `--port 0` to one port for every worker,
    and reports a port in use before any worker loads a model."""
    from .serve import listen

    probe = listen(host, port)  # in use by anyone (even another --workers server): say so
    chosen = probe.getsockname()[1]
    probe.close()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, chosen))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot hold port {chosen} on {host}: {exc.strerror}") from None
    return sock


class Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.backoff = 0.0
        self.restart_at: float | None = None


class Supervisor:
    def __init__(self, argv: list[str], host: str, port: int, count: int) -> None:
        self.argv = argv  # the worker's `voicebot run ...` arguments, without --port/--workers
        self.host = host
        self.count = count
        self.stopping = False
        self.reserved = reserve_port(host, port)
        self.port = self.reserved.getsockname()[1]
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.state = Path(tempfile.mkdtemp(prefix="voicebot-cluster-", dir=base))
        prometheus = self.state / "prometheus"
        prometheus.mkdir()
        self.env = {
            **os.environ,
            CLUSTER_DIR_ENV: str(self.state),
            WORKER_COUNT_ENV: str(count),
            PROMETHEUS_DIR_ENV: str(prometheus),
        }
        self.workers = [Worker(i) for i in range(count)]

    def _spawn(self, w: Worker) -> None:
        ready_path(self.state, w.index).unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "voicebot.cli", "run", *self.argv]
        cmd += ["--host", self.host, "--port", str(self.port), "--workers", "1"]
        w.proc = subprocess.Popen(
            cmd, env={**self.env, WORKER_INDEX_ENV: str(w.index)}, preexec_fn=_die_with_parent
        )
        w.started_at = time.monotonic()
        w.restart_at = None

    def _stop(self, signum: int, _frame: object) -> None:
        self.stopping = True
        for w in self.workers:
            if w.proc is not None and w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        try:
            # the first worker alone first: a mistake it finds (a missing module, a bad key) is
            # then said once, in its one line, and the others never load their models for nothing
            self._spawn(self.workers[0])
            if (code := self._wait_ready(self.workers[:1])) is not None:
                return code
            for w in self.workers[1:]:
                self._spawn(w)
            if (code := self._wait_ready(self.workers)) is not None:
                return code
            self._banner()
            while not self.stopping:
                self._watch()
                time.sleep(POLL_S)
            return self._drain()
        finally:
            self._stop(signal.SIGTERM, None)
            for w in self.workers:
                if w.proc is not None and w.proc.poll() is None:
                    w.proc.kill()
                    w.proc.wait()
            self.reserved.close()
            shutil.rmtree(self.state, ignore_errors=True)

    def _wait_ready(self, workers: list[Worker]) -> int | None:
        """None once all of `workers` listen; else the exit code for the supervisor."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(ready_path(self.state, w.index).exists() for w in workers):
            failed = [w for w in workers if w.proc is not None and w.proc.poll() is not None]
            if failed:
                w = failed[0]
                if w.index:  # the first worker's own message said why; a later one's did too,
                    # but not that the server as a whole gave up
                    print(f"error: worker {w.index} failed to start", file=sys.stderr)
                return w.proc.returncode or 1
            if self.stopping:
                return 0
            if time.monotonic() > deadline:
                print(f"error: workers not listening after {START_TIMEOUT_S:g} s", file=sys.stderr)
                return 1
            time.sleep(POLL_S)
        return None

    def _banner(self) -> None:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        print(f"voicebot {__version__} listening on http://{shown}:{self.port}", flush=True)
        url = page_url(self.host, self.port)
        print(f"open {url} in a browser and press Start call (Ctrl-C to stop)", flush=True)
        print(f"{self.count} worker processes share the port (--workers)", flush=True)

    def _watch(self) -> None:
        """Restart a worker that died (not one we are stopping), backing off if it keeps dying."""
        now = time.monotonic()
        for w in self.workers:
            if w.restart_at is not None:
                if now >= w.restart_at:
                    self._spawn(w)
                continue
            code = w.proc.poll() if w.proc is not None else None
            if code is None:
                continue
            self._mark_dead(w.proc.pid)
            crashed_fast = now - w.started_at < CRASH_WINDOW_S
            w.backoff = min(MAX_BACKOFF_S, max(1.0, w.backoff * 2)) if crashed_fast else 0.0
            print(
                f"worker {w.index} (pid {w.proc.pid}) exited with {code}; restarting"
                + (f" in {w.backoff:g} s" if w.backoff else ""),
                file=sys.stderr,
                flush=True,
            )
            w.restart_at = now + w.backoff

    def _drain(self) -> int:
        """Every worker drains its own calls; a worker is given its grace and then some."""
        codes = []
        for w in self.workers:
            if w.proc is None:
                continue
            try:
                codes.append(w.proc.wait())
            except KeyboardInterrupt:
                codes.append(1)
            self._mark_dead(w.proc.pid)
        return 0 if all(c in (0, -signal.SIGTERM) for c in codes) else 1

    def _mark_dead(self, pid: int) -> None:
        """prometheus_client's multiprocess mode keeps a dead worker's live gauges until told."""
        try:
            from prometheus_client import multiprocess
        except ImportError:
            return
        multiprocess.mark_process_dead(pid, self.env[PROMETHEUS_DIR_ENV])


def _die_with_parent() -> None:
    """A worker whose supervisor was killed (SIGKILL, OOM) gets SIGTERM and drains, instead of
    holding the port as an orphan nobody restarts or stops (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def supervise(argv: list[str], host: str, port: int, count: int) -> int:
    return Supervisor(argv, host, port, count).run()
