"""Load benchmark: N concurrent real-time calls against one `voicebot run` process.

Each simulated caller streams 20 ms frames in real time for the whole call (voiced speech for
`--speech-ms`, then low-level noise, like a microphone), waits for the bot's reply to finish, and
speaks again. Providers are the fast `stub` ones with zero delay and the real webrtc VAD, so what is
measured is the runtime itself:

- CPU per call (server process, % of one core) and RSS per additional call,
- event-loop lag p99 (the server's own monitor, `/health`),
- runtime overhead per turn = server-measured voice-to-voice (last speech frame → first reply frame
  sent) minus the VAD hangover (stub providers add no delay of their own),
- inbound frame lag: how late the client could send its frames (a saturated client invalidates the
  run; it is printed so you can tell).

    python benchmarks/load.py --calls 50 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import websockets

from voicebot.stats import percentile

RATE = 16000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000


def voiced(ms: int) -> list[bytes]:
    """A synthetic voiced signal (harmonic, gliding pitch, syllable-rate envelope)."""
    n = RATE * ms // 1000
    t = np.arange(n) / RATE
    f0 = 120 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 30)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    pcm = (x / np.abs(x).max() * 12000).astype("<i2").tobytes()
    return [pcm[i : i + FRAME_SAMPLES * 2] for i in range(0, len(pcm), FRAME_SAMPLES * 2)]


def noise_frame(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(FRAME_SAMPLES) * 30).astype("<i2").tobytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds used, RSS in MB) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss_kb = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    return cpu, rss_kb / 1024


def fetch(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        body = r.read().decode()
    return json.loads(body) if body.startswith("{") else body


def prom_quantiles(text: str, metric: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith(metric + "{"):
            q = line.split('quantile="', 1)[1].split('"', 1)[0]
            out[q] = float(line.rsplit(" ", 1)[1])
    return out


def health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
        return json.load(r)


def pct(values: list[float], p: float) -> float:
    return percentile(values, p, empty=float("nan"))


class Stats:
    def __init__(self) -> None:
        self.v2v_server: list[float] = []
        self.v2v_client: list[float] = []
        self.send_lag: list[float] = []
        self.turns = 0
        self.unanswered = 0
        self.errors: list[str] = []


class WsCaller:
    """One `/ws/voice` caller."""

    def __init__(self, port: int) -> None:
        self.url = f"ws://127.0.0.1:{port}/ws/voice?sample_rate={RATE}"

    async def connect(self) -> None:
        self.ws = await websockets.connect(self.url, max_queue=None)

    async def send(self, frame: bytes) -> None:
        await self.ws.send(frame)

    async def events(self):
        async for msg in self.ws:
            if isinstance(msg, bytes):
                yield "audio", None
            else:
                ev = json.loads(msg)
                yield ev.get("type"), ev

    async def close(self) -> None:
        await self.ws.close()


class TwilioCaller:
    """One phone call on `/twilio/media`: `connected` and `start`, then base64 μ-law 8 kHz `media`
    messages. The bot's audio is "played" on a real-time clock and each mark is echoed once the
    audio before it has played, as Twilio does. A phone line carries no JSON diagnostics, so the
    events the load loop needs are derived: reply audio → `audio`, all audio played and every mark
    echoed → `response` final + `listening`."""

    _payloads: dict[bytes, str] = {}  # PCM16 16 kHz frame → its base64 μ-law 8 kHz payload

    def __init__(self, port: int) -> None:
        self.webhook = f"http://127.0.0.1:{port}/twilio/voice"
        self.url = f"ws://127.0.0.1:{port}/twilio/media"
        self.sid = "MZ" + os.urandom(16).hex()
        self.ts = 0
        self.queue: asyncio.Queue = asyncio.Queue()
        self.playout_end = 0.0
        self.marks: dict[str, asyncio.TimerHandle] = {}
        self.sends: set[asyncio.Task] = set()
        self.heard_reply = False  # only a reply's first frame is reported: the loop needs no more

    async def connect(self) -> None:
        import xml.etree.ElementTree as ET

        import aiohttp

        call_sid = "CA" + self.sid[2:]
        form = {"CallSid": call_sid, "From": "+15550001111", "To": "+15550002222"}
        async with aiohttp.ClientSession() as http, http.post(self.webhook, data=form) as r:
            twiml = ET.fromstring(await r.text())  # as Twilio does: the webhook, then the stream
        params = {p.get("name"): p.get("value") for p in twiml.iter("Parameter")}
        self.ws = await websockets.connect(self.url, max_queue=None, compression=None)
        await self.ws.send(
            json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        )
        start = {
            "streamSid": self.sid,
            "accountSid": "AC0",
            "callSid": call_sid,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": params,
        }
        await self.ws.send(json.dumps({"event": "start", "start": start, "streamSid": self.sid}))
        self.prefix = f'{{"event":"media","streamSid":"{self.sid}","media":{{"track":"inbound",'

    async def send(self, frame: bytes) -> None:
        payload = self._payloads.get(frame)
        if payload is None:
            from voicebot.audio import Resampler, encode

            rs = Resampler(RATE, 8000)
            mulaw = encode(rs.process(frame) + rs.flush(), "mulaw")[:160]
            payload = self._payloads[frame] = base64.b64encode(mulaw).decode()
        await self.ws.send(f'{self.prefix}"timestamp":"{self.ts}","payload":"{payload}"}}}}')
        self.ts += FRAME_MS

    async def events(self):
        reader = asyncio.ensure_future(self._read())
        try:
            while (item := await self.queue.get()) is not None:
                yield item
        finally:
            reader.cancel()

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for raw in self.ws:
                now = loop.time()
                if raw.startswith('{"event":"media"'):
                    self.playout_end = max(self.playout_end, now) + FRAME_MS / 1000
                    if not self.heard_reply:
                        self.heard_reply = True
                        self.queue.put_nowait(("audio", None))
                    continue
                msg = json.loads(raw)
                if msg["event"] == "mark":
                    name = msg["mark"]["name"]
                    due = max(self.playout_end, now)
                    self.marks[name] = loop.call_at(due, self._echo, name)
                elif msg["event"] == "clear":
                    self.playout_end = now
                    for name, handle in list(self.marks.items()):
                        handle.cancel()
                        self._echo(name)
        finally:
            self.queue.put_nowait(None)

    def _echo(self, name: str) -> None:
        self.marks.pop(name, None)
        mark = {"event": "mark", "streamSid": self.sid, "mark": {"name": name}}
        task = asyncio.ensure_future(self.ws.send(json.dumps(mark)))
        self.sends.add(task)
        task.add_done_callback(self.sends.discard)
        if not self.marks and self.playout_end <= asyncio.get_running_loop().time() + 0.001:
            self.heard_reply = False
            self.queue.put_nowait(("response", {"final": True}))
            self.queue.put_nowait(("status", {"status": "listening"}))

    async def close(self) -> None:
        for handle in self.marks.values():
            handle.cancel()
        await self.ws.send(json.dumps({"event": "stop", "streamSid": self.sid, "stop": {}}))
        await self.ws.close()


PROTOCOLS = {"ws": WsCaller, "twilio": TwilioCaller}


async def caller(i: int, port: int, protocol: str, until: float, args, stats: Stats) -> None:
    c = PROTOCOLS[protocol](port)
    await c.connect()
    speech = voiced(args.speech_ms)
    quiet = noise_frame(i)
    state = {"turn_sent_at": None, "answered": True}
    ready = asyncio.Event()
    ready.set()

    async def read() -> None:
        async for kind, ev in c.events():
            if kind == "audio":
                if state["turn_sent_at"] is not None:
                    stats.v2v_client.append((time.monotonic() - state["turn_sent_at"]) * 1000)
                    state["turn_sent_at"] = None
            elif kind == "metrics" and ev.get("voice_to_voice_ms") is not None and ev["turn"] > 0:
                stats.v2v_server.append(ev["voice_to_voice_ms"])
            elif kind == "response" and ev.get("final"):
                state["answered"] = True
            elif kind == "status" and ev.get("status") in ("listening",):
                ready.set()
            elif kind == "error":
                stats.errors.append(ev.get("code", "?"))

    reader = asyncio.ensure_future(read())
    start = time.monotonic()
    n = 0  # frames sent: the caller's microphone never stops, like a real one
    pending: list[bytes] = []
    gap_until = start + 0.3
    try:
        while time.monotonic() < until:
            due = start + n * FRAME_MS / 1000
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            now = time.monotonic()
            stats.send_lag.append(max(0.0, now - due) * 1000)
            if not pending and ready.is_set() and now >= gap_until:
                if not state["answered"]:
                    stats.unanswered += 1
                state["answered"] = False
                ready.clear()
                pending = list(speech)
            if pending:
                await c.send(pending.pop(0))
                if not pending:
                    state["turn_sent_at"] = time.monotonic()
                    stats.turns += 1
            else:
                await c.send(quiet)
                if not ready.is_set():
                    gap_until = now + 0.3
            n += 1
    finally:
        reader.cancel()
        await c.close()


def server_config(tmp: Path, args) -> Path:
    cfg = {
        "server": {"host": "127.0.0.1"},
        "pipeline": {"vad_hangover_ms": args.hangover_ms, "sample_rate": args.pipeline_rate},
        "providers": {
            "vad": {"use": args.vad},
            "stt": {"use": "stub", "text": "what time is it"},
            "tts": {"use": "stub", "ms_per_char": 10},
            "llm": {"use": "stub"},
        },
        "dialogue": {"mode": "llm", "greeting": "Hi."},
        # every simulated caller connects from 127.0.0.1: no per-address connection cap
        "security": {
            "limits": {"max_calls": 5000, "idle_timeout_s": 600, "max_connections_per_client": 0}
        },
        "telephony": {"twilio": {"allow_unsigned": True}},  # loopback only, no Twilio token
    }
    if args.vad == "testvad":  # the loudness VAD from the test suite, when webrtc is unavailable
        cfg["plugins"] = ["tests.testvad"]
    path = tmp / "config.yaml"
    path.write_text(json.dumps(cfg))
    return path


async def run(args) -> None:
    tmp = Path(tempfile.mkdtemp())
    port = free_port()
    cfg = server_config(tmp, args)
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
        [
            sys.executable,
            "-m",
            "voicebot.cli",
            "run",
            str(cfg),
            "--port",
            str(port),
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                health(port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        # warm-up call so lazily imported code is loaded before the idle figure
        warm = Stats()
        await caller(0, port, args.protocol, time.monotonic() + 2, args, warm)
        await asyncio.sleep(1)
        _, rss_idle = proc_stats(server.pid)
        stats = Stats()
        ramp_until = time.monotonic() + args.seconds + args.ramp
        tasks = []
        for i in range(args.calls):
            tasks.append(
                asyncio.ensure_future(caller(i, port, args.protocol, ramp_until, args, stats))
            )
            await asyncio.sleep(args.ramp / args.calls)
        await asyncio.sleep(2)
        stats.v2v_server.clear(), stats.v2v_client.clear(), stats.send_lag.clear()
        if args.protocol == "twilio":
            fetch(port, "/telephony/stats?reset=1")  # the server's lag figures: this window only
        cpu0, _ = proc_stats(server.pid)
        t0 = time.monotonic()
        await asyncio.sleep(max(1.0, ramp_until - time.monotonic() - 1))
        cpu1, rss_busy = proc_stats(server.pid)
        elapsed = time.monotonic() - t0
        h = health(port)
        phone = fetch(port, "/telephony/stats") if args.protocol == "twilio" else None
        prom = fetch(port, "/metrics")
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    overhead = [v - args.hangover_ms for v in stats.v2v_server]
    cpu_pct = (cpu1 - cpu0) / elapsed * 100
    print(
        f"protocol={args.protocol} calls={args.calls} vad={args.vad} "
        f"pipeline_rate={args.pipeline_rate} window={elapsed:.1f}s"
    )
    answered = len(stats.v2v_client if phone is not None else stats.v2v_server)
    print(
        f"turns answered: {answered}, unanswered: {stats.unanswered}; client errors: "
        f"{len(stats.errors)} {sorted(set(stats.errors))[:5]}"
    )
    print(f"server CPU: {cpu_pct:.1f}% of one core total, {cpu_pct / args.calls:.3f}% per call")
    print(
        f"server RSS: idle {rss_idle:.1f} MB, busy {rss_busy:.1f} MB, "
        f"{(rss_busy - rss_idle) / args.calls * 1024:.0f} KB per additional call"
    )
    lag = h["event_loop_lag_ms"]
    print(f"server event-loop lag: p50 {lag['p50']} ms, p99 {lag['p99']} ms")
    if phone is None:
        print(
            f"runtime overhead per turn (v2v - {args.hangover_ms} ms hangover): "
            f"p50 {pct(overhead, 0.5):.1f} ms, p95 {pct(overhead, 0.95):.1f} ms, "
            f"p99 {pct(overhead, 0.99):.1f} ms"
        )
    else:
        # telephony carries no `metrics` messages: the server's own turn record (the last 1000
        # turns, exported on /metrics) gives voice-to-voice, and /telephony/stats the lateness of
        # every inbound frame of the window against its timestamp (network + client + server)
        v2v = prom_quantiles(prom, "voicebot_voice_to_voice_ms")
        lag_in = phone["inbound_lag_ms"]
        print(
            f"runtime overhead per turn (server v2v - {args.hangover_ms} ms hangover, last 1000 "
            f"turns): p50 {v2v.get('0.5', float('nan')) - args.hangover_ms:.1f} ms, "
            f"p95 {v2v.get('0.95', float('nan')) - args.hangover_ms:.1f} ms"
        )
        print(
            f"inbound frame lag (server, vs media timestamps): p50 {lag_in['p50']} ms, "
            f"p99 {lag_in['p99']} ms, max {lag_in['max']} ms (n={lag_in['n']}); "
            f"active streams {phone['active_streams']}"
        )
    print(
        f"client-side voice-to-voice: p50 {pct(stats.v2v_client, 0.5):.1f} ms, "
        f"p95 {pct(stats.v2v_client, 0.95):.1f} ms"
    )
    print(
        f"client frame send lag: p99 {pct(stats.send_lag, 0.99):.1f} ms "
        f"(n={len(stats.send_lag)}; high values mean the load generator itself is saturated)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--ramp", type=float, default=5, help="seconds to open all calls")
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), default="ws")
    p.add_argument("--vad", default="webrtc")
    p.add_argument("--hangover-ms", type=int, default=300)
    p.add_argument(
        "--pipeline-rate",
        type=int,
        default=16000,
        help="pipeline.sample_rate; 8000 spares phone calls the 8 kHz → 16 kHz resampling",
    )
    p.add_argument("--speech-ms", type=int, default=600)
    p.add_argument("--wait-ms", type=int, default=5000, help="longest wait for a reply")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
