"""Voice-to-voice latency of the embedded stack through a real `voicebot run` process.

Each simulated caller connects to `/ws/voice`, speaks recorded human utterances
(benchmarks/data/speech) in real time, 20 ms per frame, and keeps its microphone open afterwards
(a low noise floor, never silence-by-absence). Voice-to-voice is measured at the client: from the
moment the last voiced frame of the utterance was sent to the first frame of bot audio received
on the socket. The server runs Silero VAD (300 ms hangover), Whisper tiny.en with speculative
decoding, and Piper; the dialogue is `echo` ("You said: ..."), so every reply is synthesized fresh
(no cache hit flatters the figure).

    python benchmarks/latency_embedded.py            # 1 call x 20 turns, then 4 calls x 6 turns

Target (issue 5): p50 ≤ 700 ms at 1 call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import wave
from pathlib import Path

import numpy as np
import websockets

from voicebot.stats import percentile

DATA = Path(__file__).parent / "data" / "speech"
RATE = 16000
FRAME_MS = 20
FRAME = RATE * FRAME_MS // 1000 * 2


def load_utterances() -> list[list[bytes]]:
    """The human clips as 20 ms frames, cut right after the last voiced frame.

    Trailing room tone would otherwise count as "speech" the bot has to wait out, and the
    measured end of speech would be late by its length.
    """
    out = []
    for line in (DATA / "transcripts.tsv").read_text().splitlines():
        with wave.open(str(DATA / line.split("\t")[0])) as w:
            pcm = w.readframes(w.getnframes())
        frames = [pcm[i : i + FRAME] for i in range(0, len(pcm) - FRAME + 1, FRAME)]
        level = np.array(
            [np.sqrt(np.mean(np.frombuffer(f, "<i2").astype(float) ** 2)) for f in frames]
        )
        voiced = np.flatnonzero(level > 0.1 * level.max())
        out.append(frames[max(0, voiced[0] - 5) : voiced[-1] + 1])
    return out


def noise_floor(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(FRAME // 2) * 30).astype("<i2").tobytes()


def pct(values: list[float], p: float) -> float:
    return percentile(values, p, empty=float("nan"))


class Caller:
    def __init__(self, idx: int, url: str, utterances: list[list[bytes]], turns: int) -> None:
        self.idx = idx
        self.url = url
        self.utterances = utterances
        self.turns = turns
        self.v2v_ms: list[float] = []
        self.metrics: list[dict] = []
        self.unanswered = 0
        self._mic: list[bytes] = []  # frames still to say; the noise floor when empty
        self._speech_end: float | None = None
        self._answered = asyncio.Event()
        self._reply_done = asyncio.Event()

    async def run(self) -> None:
        async with websockets.connect(f"{self.url}?sample_rate={RATE}", max_queue=None) as ws:
            tasks = [
                asyncio.ensure_future(self._read(ws)),
                asyncio.ensure_future(self._mic_loop(ws)),
            ]
            try:
                await asyncio.wait_for(self._reply_done.wait(), 15)  # the greeting
                for turn in range(self.turns):
                    await asyncio.sleep(0.4)  # a caller's pause before answering the bot
                    await self._turn(self.utterances[(self.idx * 5 + turn) % len(self.utterances)])
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _turn(self, frames: list[bytes]) -> None:
        self._answered.clear()
        self._reply_done.clear()
        self._mic = list(frames)
        try:
            await asyncio.wait_for(self._answered.wait(), 10 + len(frames) * FRAME_MS / 1000)
            await asyncio.wait_for(self._reply_done.wait(), 60)
        except TimeoutError:
            self.unanswered += 1
            self._speech_end = None

    async def _mic_loop(self, ws) -> None:
        """A microphone that never stops: real-time 20 ms frames, speech or the noise floor."""
        quiet = noise_floor(self.idx)
        start = time.perf_counter()
        n = 0
        while True:
            await asyncio.sleep(max(0.0, start + n * FRAME_MS / 1000 - time.perf_counter()))
            if self._mic:
                await ws.send(self._mic.pop(0))
                if not self._mic:
                    self._speech_end = time.perf_counter()
            else:
                await ws.send(quiet)
            n += 1

    async def _read(self, ws) -> None:
        spoke = False
        async for msg in ws:
            now = time.perf_counter()
            if isinstance(msg, bytes):
                if self._speech_end is not None:
                    self.v2v_ms.append((now - self._speech_end) * 1000)
                    self._speech_end = None
                    self._answered.set()
                continue
            ev = json.loads(msg)
            if ev.get("type") == "status":
                if ev["status"] == "speaking":
                    spoke = True
                elif ev["status"] == "listening" and spoke:
                    spoke = False
                    self._reply_done.set()
            elif ev.get("type") == "metrics" and ev.get("turn", 0) > 0:
                self.metrics.append(ev)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(args) -> tuple[subprocess.Popen, int]:
    cfg = {
        "server": {"host": "127.0.0.1"},
        "pipeline": {"vad_hangover_ms": args.hangover_ms},
        "providers": {
            "vad": {"use": args.vad},
            "stt": {"use": "whisper", "cpu_threads": args.whisper_threads},
            "tts": {"use": "piper"},
        },
        "dialogue": {"mode": "echo", "greeting": "Hi."},
        "security": {"limits": {"max_calls": 100, "idle_timeout_s": 600}},
    }
    if args.partials:
        cfg["providers"]["partials"] = {"use": "pocketsphinx"}
    path = Path(tempfile.mkdtemp()) / "config.yaml"
    path.write_text(json.dumps(cfg))
    port = free_port()
    cmd = [sys.executable, "-m", "voicebot.cli", "run", str(path), "--port", str(port)]
    server = subprocess.Popen([*cmd, "--log-level", "WARNING"], stdout=subprocess.DEVNULL)
    for _ in range(600):  # models load in a few seconds
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return server, port
        except OSError:
            if server.poll() is not None:
                raise SystemExit("the server exited while starting: see its log above") from None
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("the server did not answer /health within 60 s")


async def scenario(port: int, calls: int, turns: int, utterances) -> None:
    url = f"ws://127.0.0.1:{port}/ws/voice"
    callers = [Caller(i, url, utterances, turns) for i in range(calls)]
    t0 = time.perf_counter()
    await asyncio.gather(*(c.run() for c in callers))
    elapsed = time.perf_counter() - t0
    v2v = [v for c in callers for v in c.v2v_ms]
    metrics = [m for c in callers for m in c.metrics]
    unanswered = sum(c.unanswered for c in callers)

    def server_p50(key: str) -> float:
        return pct([m[key] for m in metrics if m.get(key) is not None], 0.5)

    print(
        f"{calls} call(s): {len(v2v)} turns answered, {unanswered} unanswered, {elapsed:.0f} s\n"
        f"  voice-to-voice (client): p50 {pct(v2v, 0.5):.0f} ms, p95 {pct(v2v, 0.95):.0f} ms,"
        f" max {max(v2v, default=float('nan')):.0f} ms\n"
        f"  server breakdown p50: endpointing {server_p50('endpointing_ms'):.0f} ms"
        f" (hangover included), stt after hangover {server_p50('stt_ms'):.0f} ms,"
        f" tts first byte {server_p50('tts_first_byte_ms'):.0f} ms,"
        f" first audio out {server_p50('first_audio_ms'):.0f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hangover-ms", type=int, default=300)
    parser.add_argument("--vad", default="silero")
    parser.add_argument("--whisper-threads", type=int, default=0, help="0 = all cores")
    parser.add_argument("--turns-single", type=int, default=20)
    parser.add_argument("--turns-concurrent", type=int, default=6, help="per call, with 4 calls")
    parser.add_argument(
        "--partials", action="store_true", help="pocketsphinx partials beside Whisper"
    )
    args = parser.parse_args()
    utterances = load_utterances()
    server, port = start_server(args)
    try:
        print(
            f"server up, RSS {rss_mb(server.pid):.0f} MB (vad={args.vad}, stt=whisper,"
            f" tts=piper{', partials=pocketsphinx' if args.partials else ''})"
        )
        await scenario(port, 1, args.turns_single, utterances)
        await scenario(port, 4, args.turns_concurrent, utterances)
        print(f"server RSS after the runs: {rss_mb(server.pid):.0f} MB")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    asyncio.run(main())
