"""Phone-call load with the real OpenAI SDK over HTTP: the conditions of issue 14.

Three processes, so each one's CPU is its own:

- the server, `voicebot run` with the `openai` provider (the real SDK) for STT, LLM and TTS,
  its `base_url` pointing at
- a loopback fake of the OpenAI routes (`voicebot/bench/openai_fake.py`), which answers STT after
  150 ms, starts streaming LLM tokens after 200 ms and TTS audio after 150 ms, and
- this load generator, which places Twilio media-stream calls: the answer webhook, then the
  WebSocket; 2 turns per call, each a 2.2 s utterance after 1 s of silence; the bot's audio is
  "played" on a real-time clock and each mark echoed once the audio before it has played, as
  Twilio does.

webrtc VAD with a 200 ms hangover, no greeting. It prints calls, turns answered, voice-to-voice
p50/p95 (client side: end of the caller's utterance → first bot audio received), the server's CPU
(% of one core, total and per call, sampled while every call is up) and RSS.

    python benchmarks/load_sdk.py --calls 10 50 100
    python benchmarks/load_sdk.py --calls 300 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from voicebot.audio import Resampler, encode  # noqa: E402
from voicebot.bench.load import frames, noise_frame, voiced  # noqa: E402
from voicebot.bench.target import proc_stats, process_tree  # noqa: E402
from voicebot.server.supervisor import default_workers  # noqa: E402
from voicebot.stats import percentile  # noqa: E402

FRAME_S = 0.020
REPLY = "Sure. It is three o'clock in the afternoon, and the shop is open until six."


# ------------------------------------------------------------------------------ the fake's process


def serve_fake(port_file: str) -> None:
    """The fake OpenAI server, in its own process (`--serve-fake`): its CPU is not the server's."""
    from voicebot.bench.openai_fake import ChatReply, FakeOpenAI

    class Fake(FakeOpenAI):
        async def record(self, route, request, body=None) -> None:
            """Nothing kept: a long benchmark would otherwise grow the request log forever."""

    words = REPLY.split(" ")
    parts = [w if i == 0 else " " + w for i, w in enumerate(words)]

    async def main() -> None:
        fake = Fake()
        fake.latency = {"transcriptions": 0.150, "chat": 0.200, "speech": 0.150}
        fake.chat_replies = _Endless(lambda: ChatReply(text_parts=list(parts)))
        fake.transcripts = _Endless(lambda: "what time is it")
        async with fake:
            Path(port_file).write_text(str(fake.port))  # noqa: ASYNC240 - once, at start
            await asyncio.Event().wait()

    asyncio.run(main())


class _Endless:
    """A `deque` stand-in that never runs dry."""

    def __init__(self, make) -> None:
        self._make = make

    def __bool__(self) -> bool:
        return True

    def popleft(self):
        return self._make()


# ------------------------------------------------------------------------------ the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_config(tmp: Path, fake_url: str, args) -> Path:
    openai = {"base_url": f"{fake_url}/v1", "api_key": "sk-fake"}
    cfg = {
        "server": {"host": "127.0.0.1"},
        "pipeline": {"vad_hangover_ms": 200, **dict(args.pipeline)},
        "providers": {
            "vad": {"use": "webrtc"},
            "stt": {"use": "openai", **openai},
            "llm": {"use": "openai", **openai},
            "tts": {"use": "openai", **openai},
        },
        "dialogue": {"mode": "llm", "greeting": ""},
        "security": {
            "limits": {
                "max_calls": args.max_calls,
                "idle_timeout_s": 600,
                "max_connections_per_client": 0,
            }
        },
        "telephony": {"twilio": {"allow_unsigned": True}},  # loopback only, no Twilio token
    }
    path = tmp / "config.yaml"
    path.write_text(json.dumps(cfg))
    return path


def tree_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds, RSS MB) of a process and all its descendants (the workers of
    `--workers N`): `proc_stats` walks the tree itself, so children are not added again (that
    counted every worker twice)."""
    return proc_stats(pid)


def process_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each process of the server (supervisor first, then its workers)."""
    out = {}
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[p] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


# ------------------------------------------------------------------------------ callers


class Results:
    def __init__(self) -> None:
        self.calls_done = 0
        self.calls_failed: list[str] = []
        self.turns = 0
        self.answered = 0
        self.v2v: list[float] = []
        self.send_lag: list[float] = []


class Caller:
    """One phone call: μ-law media at 20 ms intervals, marks echoed when their audio has played."""

    payloads: dict[bytes, str] = {}

    def __init__(self, port: int, http: aiohttp.ClientSession) -> None:
        self.port = port
        self.http = http
        self.sid = "MZ" + os.urandom(16).hex()
        self.ts = 0
        self.playout_end = 0.0
        self.marks: dict[str, asyncio.TimerHandle] = {}
        self.sends: set[asyncio.Task] = set()
        self.first_audio: float | None = None
        self.idle = asyncio.Event()
        self.idle.set()

    @classmethod
    def payload(cls, frame: bytes) -> str:
        if frame not in cls.payloads:
            rs = Resampler(16000, 8000)
            mulaw = encode(rs.process(frame) + rs.flush(), "mulaw")[:160]
            cls.payloads[frame] = base64.b64encode(mulaw).decode()
        return cls.payloads[frame]

    async def connect(self) -> None:
        import xml.etree.ElementTree as ET

        call_sid = "CA" + self.sid[2:]
        form = {"CallSid": call_sid, "From": "+15550001111", "To": "+15550002222"}
        base = f"http://127.0.0.1:{self.port}"
        async with self.http.post(f"{base}/twilio/voice", data=form) as r:
            twiml = ET.fromstring(await r.text())
        if twiml.find("Reject") is not None:
            raise ConnectionRefusedError("rejected by the answer webhook")
        params = {p.get("name"): p.get("value") for p in twiml.iter("Parameter")}
        self.ws = await self.http.ws_connect(f"ws://127.0.0.1:{self.port}/twilio/media")
        await self.ws.send_str(json.dumps({"event": "connected", "protocol": "Call"}))
        start = {
            "streamSid": self.sid,
            "accountSid": "AC0",
            "callSid": call_sid,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": params,
        }
        await self.ws.send_str(json.dumps({"event": "start", "start": start}))
        self.prefix = f'{{"event":"media","streamSid":"{self.sid}","media":{{"track":"inbound",'
        self.reader = asyncio.ensure_future(self._read())

    async def send(self, frame: bytes) -> None:
        payload = self.payload(frame)
        await self.ws.send_str(f'{self.prefix}"timestamp":"{self.ts}","payload":"{payload}"}}}}')
        self.ts += 20

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            raw, now = msg.data, loop.time()
            if raw.startswith('{"event":"media"'):
                start = raw.index('"payload":"') + 11
                b64 = raw.index('"', start) - start
                seconds = b64 * 3 / 4 / 8000  # μ-law 8 kHz: one byte a sample
                self.playout_end = max(self.playout_end, now) + seconds
                if self.first_audio is None:
                    self.first_audio = now
                self.idle.clear()
                continue
            event = json.loads(raw)
            if event["event"] == "mark":
                name = event["mark"]["name"]
                self.marks[name] = loop.call_at(max(self.playout_end, now), self._echo, name)
            elif event["event"] == "clear":
                self.playout_end = now
                for name, handle in list(self.marks.items()):
                    handle.cancel()
                    self._echo(name)
        self.idle.set()

    def _echo(self, name: str) -> None:
        self.marks.pop(name, None)
        mark = {"event": "mark", "streamSid": self.sid, "mark": {"name": name}}
        task = asyncio.ensure_future(self.ws.send_str(json.dumps(mark)))
        self.sends.add(task)
        task.add_done_callback(self.sends.discard)
        loop = asyncio.get_running_loop()
        if not self.marks and self.playout_end <= loop.time() + 0.001:
            self.idle.set()

    async def close(self) -> None:
        for handle in self.marks.values():
            handle.cancel()
        if not self.ws.closed:
            await self.ws.send_str(json.dumps({"event": "stop", "stop": {}}))
            await self.ws.close()
        self.reader.cancel()


class Clock:
    """One 20 ms tick for every caller: 300 callers with a timer each would make the load
    generator, not the server, the bottleneck. Callers are spread over 4 phases (5 ms apart) so
    the server does not see every frame of every call arrive in the same millisecond."""

    PHASES = 4

    def __init__(self, results: Results) -> None:
        self.results = results
        self.ticks = [asyncio.Event() for _ in range(self.PHASES)]
        self.tick_no = [0] * self.PHASES
        self.n = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        step = FRAME_S / self.PHASES
        k = 0
        while True:
            due = start + k * step
            await asyncio.sleep(max(0.0, due - loop.time()))
            self.results.send_lag.append(max(0.0, loop.time() - due) * 1000)
            phase = k % self.PHASES
            event = self.ticks[phase]
            self.ticks[phase] = asyncio.Event()
            event.set()
            k += 1

    def phase(self) -> int:
        self.n += 1
        return self.n % self.PHASES

    async def wait(self, phase: int) -> None:
        await self.ticks[phase].wait()


async def one_call(port: int, http, clock: Clock, args, res: Results, speech, quiet) -> None:
    c = Caller(port, http)
    phase = clock.phase()
    loop = asyncio.get_running_loop()
    try:
        await c.connect()
    except Exception as exc:  # refused or broken: counted, not fatal
        res.calls_failed.append(type(exc).__name__)
        return
    try:
        for _turn in range(args.turns):
            for _ in range(int(args.silence_ms / 20)):
                await clock.wait(phase)
                await c.send(quiet)
            for frame in speech:
                await clock.wait(phase)
                await c.send(frame)
            ended = loop.time()
            c.first_audio = None
            res.turns += 1
            deadline = ended + args.wait_s
            # keep the microphone open (noise) until the reply has played out
            while loop.time() < deadline and not c.ws.closed:
                await clock.wait(phase)
                await c.send(quiet)
                if c.first_audio is not None and c.idle.is_set() and not c.marks:
                    break
            if c.first_audio is not None:
                res.answered += 1
                res.v2v.append((c.first_audio - ended) * 1000)
        res.calls_done += 1
    except Exception as exc:
        res.calls_failed.append(type(exc).__name__)
    finally:
        await c.close()


async def load(port: int, server_pid: int, calls: int, args, fake_pid: int = 0) -> dict:
    res = Results()
    speech = frames(voiced(args.speech_ms))
    quiet = noise_frame(1)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        clock = Clock(res)
        ticker = asyncio.ensure_future(clock.run())
        tasks = []
        t_start = time.monotonic()
        cpu_start, _ = tree_stats(server_pid)
        samples: list[tuple[float, float]] = []
        for _ in range(calls):
            tasks.append(
                asyncio.ensure_future(one_call(port, http, clock, args, res, speech, quiet))
            )
            await asyncio.sleep(args.ramp / calls)
        # every call is up: the steady state lasts until the first finishes its second turn
        steady_from = time.monotonic()
        if args.profile:  # py-spy (pip install py-spy): collapsed stacks of the steady state
            spy = subprocess.Popen(  # noqa: ASYNC220 - a fire-and-forget sampler
                [
                    "py-spy",
                    "record",
                    "-p",
                    str(server_pid),
                    "-d",
                    "12",
                    "-r",
                    "250",
                    "--nonblocking",
                    "-f",
                    "raw",
                    "-o",
                    args.profile,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        cpu0, _ = tree_stats(server_pid)
        procs0 = process_cpu(server_pid)
        procs: dict[int, float] = {}
        fake0, own0 = tree_stats(fake_pid)[0] if fake_pid else 0.0, time.process_time()
        rss_peak = 0.0
        steady: tuple[float, float] | None = None
        others = (float("nan"), float("nan"))
        while not all(t.done() for t in tasks):
            await asyncio.sleep(0.5)
            cpu, rss = tree_stats(server_pid)
            samples.append((time.monotonic(), cpu))
            rss_peak = max(rss_peak, rss)
            if steady is None and res.calls_done + len(res.calls_failed) > 0:
                steady = (samples[-1][0] - steady_from, samples[-1][1] - cpu0)
                procs = {
                    p: (c - procs0[p]) / steady[0] * 100
                    for p, c in process_cpu(server_pid).items()
                    if p in procs0
                }
                others = (
                    (tree_stats(fake_pid)[0] - fake0 if fake_pid else 0.0) / steady[0] * 100,
                    (time.process_time() - own0) / steady[0] * 100,
                )
        await asyncio.gather(*tasks, return_exceptions=True)
        ticker.cancel()
        if args.profile:
            spy.wait()
    elapsed = time.monotonic() - t_start
    cpu_total = tree_stats(server_pid)[0] - cpu_start
    if steady is None or steady[0] <= 0:
        steady = (samples[-1][0] - steady_from, samples[-1][1] - cpu0) if samples else (1.0, 0.0)
    peak = max(
        ((b[1] - a[1]) / (b[0] - a[0]) for a, b in itertools.pairwise(samples)),
        default=0.0,
    )
    steady_cpu = steady[1] / steady[0] * 100
    return {
        "calls": calls,
        "calls_completed": res.calls_done,
        "calls_failed": len(res.calls_failed),
        "failures": sorted(set(res.calls_failed)),
        "turns": res.turns,
        "answered": res.answered,
        "v2v_p50": percentile(res.v2v, 0.5, empty=float("nan")),
        "v2v_p95": percentile(res.v2v, 0.95, empty=float("nan")),
        "cpu_pct": steady_cpu,
        "cpu_peak_pct": peak * 100,
        "cpu_pct_per_call": steady_cpu / calls,
        # the same window, each process alone: the supervisor (first), then each worker
        "process_cpu_pct": list(procs.values()),
        # all the work of the run, however contended the machine: the figure to compare levers
        "cpu_ms_per_call": cpu_total / calls * 1000,
        "rss_mb": rss_peak,
        "fake_cpu_pct": others[0],
        "loadgen_cpu_pct": others[1],
        "send_lag_p99": percentile(res.send_lag, 0.99, empty=float("nan")),
        "elapsed_s": elapsed,
    }


async def wait_health(port: int, proc: subprocess.Popen, workers: int = 1) -> None:
    """Until every worker is up: the first answers `/health` while the others still load, and
    their start-up CPU would otherwise be counted as the calls'."""
    async with aiohttp.ClientSession() as http:
        for _ in range(1200):
            if proc.poll() is not None:
                raise SystemExit(f"the server exited with {proc.returncode}")
            try:
                async with http.get(f"http://127.0.0.1:{port}/health") as r:
                    health = await r.json()
                    up = [
                        p for p in health.get("processes", [{}]) if p.get("status") != "unreachable"
                    ]
                    if r.status == 200 and health["status"] == "healthy" and len(up) >= workers:
                        return
            except (aiohttp.ClientError, ValueError):
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the server did not come up")


async def warm(port: int, args, workers: int = 1) -> None:
    """Calls first, until every worker has taken one, so lazily imported code and each worker's
    connections to the fake are warm (the kernel picks the worker: a few rounds may be needed)."""
    quick = argparse.Namespace(**{**vars(args), "turns": 1})
    speech, quiet = frames(voiced(args.speech_ms)), noise_frame(1)
    seen: set[int] = set()
    async with aiohttp.ClientSession() as http:
        clock = Clock(Results())
        ticker = asyncio.ensure_future(clock.run())
        for _round in range(6):
            batch = [
                asyncio.ensure_future(one_call(port, http, clock, quick, Results(), speech, quiet))
                for _ in range(2 * workers - 1 if workers > 1 else 1)
            ]
            await asyncio.sleep(1.0)
            async with http.get(f"http://127.0.0.1:{port}/calls") as r:
                seen |= {c.get("pid", 0) for c in (await r.json()).get("calls", [])}
            await asyncio.gather(*batch)
            if workers <= 1 or len(seen) >= workers:
                break
        ticker.cancel()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--calls", type=int, nargs="+", default=[10, 50, 100, 150, 200, 300])
    p.add_argument("--turns", type=int, default=2)
    p.add_argument("--speech-ms", type=int, default=2200)
    p.add_argument("--silence-ms", type=int, default=1000)
    p.add_argument("--ramp", type=float, default=3.0, help="seconds to open all calls")
    p.add_argument("--wait-s", type=float, default=15.0, help="longest wait for a reply")
    p.add_argument("--workers", type=int, default=None, help="voicebot run --workers N")
    p.add_argument("--max-calls", type=int, default=5000, help="security.limits.max_calls")
    p.add_argument(
        "--pipeline",
        action="append",
        default=[],
        type=lambda kv: (kv.split("=")[0], int(kv.split("=")[1])),
        help="a pipeline setting, e.g. --pipeline phone_message_ms=20",
    )
    p.add_argument(
        "--server-path",
        help="PYTHONPATH for the server: a directory holding another checkout's `voicebot` and "
        "`voicebot_plugins` (its plugins/ linked under that name), to measure it with this script",
    )
    p.add_argument("--json", help="also write the figures here")
    p.add_argument("--profile", help="py-spy collapsed stacks of the server's steady state")
    p.add_argument("--serve-fake", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_fake:
        return serve_fake(args.serve_fake)
    tmp = Path(tempfile.mkdtemp())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    port_file = tmp / "fake.port"
    fake = subprocess.Popen(
        [sys.executable, __file__, "--serve-fake", str(port_file)], env=env, cwd=ROOT
    )
    rows = []
    workers = args.workers if args.workers is not None else default_workers()
    try:
        while not port_file.exists() or not port_file.read_text():
            if fake.poll() is not None:
                raise SystemExit("the fake OpenAI server did not start")
            time.sleep(0.05)
        fake_url = f"http://127.0.0.1:{port_file.read_text()}"
        cfg = server_config(tmp, fake_url, args)
        for calls in args.calls:
            port = free_port()
            server_env = env
            if args.server_path:
                server_env = {**os.environ, "PYTHONPATH": args.server_path}
            cmd = [sys.executable, "-m", "voicebot.cli", "run", str(cfg), "--port", str(port)]
            cmd += ["--log-level", "WARNING"]
            if args.workers is not None:
                cmd += ["--workers", str(args.workers)]
            cwd = args.server_path or ROOT  # `-m` puts the working directory first on the path
            server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=server_env, cwd=cwd)
            try:
                asyncio.run(wait_health(port, server, workers))
                asyncio.run(warm(port, args, workers))
                row = asyncio.run(load(port, server.pid, calls, args, fake.pid))
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=60)
            rows.append(row)
            print_row(row, header=len(rows) == 1)
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def print_row(r: dict, header: bool) -> None:
    if header:
        print(
            "calls | done/failed | turns answered | v2v p50 / p95 ms | server CPU % of a core "
            "(peak) | CPU %/call | server CPU ms per call (whole run) | RSS MB | "
            "fake / load generator CPU % | tick lag p99 ms | CPU % by process",
            flush=True,
        )
    print(
        f"{r['calls']} | {r['calls_completed']}/{r['calls_failed']} {r['failures'][:3]} | "
        f"{r['answered']}/{r['turns']} | {r['v2v_p50']:.0f} / {r['v2v_p95']:.0f} | "
        f"{r['cpu_pct']:.0f} ({r['cpu_peak_pct']:.0f}) | {r['cpu_pct_per_call']:.3f} | "
        f"{r['cpu_ms_per_call']:.0f} | "
        f"{r['rss_mb']:.0f} | {r['fake_cpu_pct']:.0f} / {r['loadgen_cpu_pct']:.0f} | "
        f"{r['send_lag_p99']:.1f} | " + " ".join(f"{c:.0f}" for c in r["process_cpu_pct"]),
        flush=True,
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
