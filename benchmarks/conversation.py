"""How a conversation feels through the whole pipeline, measured as a caller would (issue 17).

Starts `voicebot run` on the embedded default engines (Silero, Whisper, Piper) with the `echo`
dialogue, or drives a server already running (`--port`), and talks to it over real sockets:
`/ws/voice` (16 kHz PCM, "wide") and a Twilio media stream (8 kHz μ-law, "phone"). The speech is
the human recordings in benchmarks/data/speech with their reference texts (transcripts.tsv);
backchannels are spoken by the embedded TTS (Piper) in this process. It prints:

- WER through the pipeline, phone and wide (both sides normalised, numbers as words);
- words lost when talking over the bot: clips said while the greeting plays, as their WER;
- mid-sentence cut-off rate: clips with a 600-900 ms pause spliced in at a word gap, and TTS
  sentences with a thinking pause after an unfinished phrase; a cut-off is the bot answering
  before the caller finished, or one utterance taken as several turns;
- false stops per minute of bot speech: backchannels ("mm-hm", "yeah", "okay") and noise bursts
  sent while the bot talks; each `interrupted` status is a stop, and a final transcript made of
  them is a turn they should not have become;
- voice-to-voice p50/p95: last voiced frame sent → first reply audio received (wide).

    python benchmarks/conversation.py                  # ~5 min on 2 idle cores
    python benchmarks/conversation.py --features-off   # the same with issue 17's behaviours off
    python benchmarks/conversation.py --noise          # WER in café/street noise, denoiser off/on
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
import wave
from pathlib import Path

import aiohttp
import numpy as np
import websockets
from wer import normalize_words, word_errors  # benchmarks/wer.py: a script's folder is on sys.path

from voicebot.audio import Resampler, encode
from voicebot.stats import percentile

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data" / "speech"
RATE = 16000
FRAME_MS = 20
FRAME = RATE * FRAME_MS // 1000 * 2
LONG_GREETING = (
    "Hello, and thank you for calling the benchmark line. I will repeat whatever you say to me, "
    "word for word, so that we can hear how well the whole pipeline understands you. "
    "Take your time, speak naturally, and pause whenever you like while you think."
)
BACKCHANNELS = ["Mm-hm.", "Yeah.", "Okay.", "Mm-hm.", "Yeah.", "Okay."]
PAUSED_TTS = [  # (before the pause, after it): the pause follows an unfinished phrase
    ("I'd like to book a table for", "four people on Friday evening."),
    ("My account number is", "seven two nine four."),
    ("I want to change my address and", "my phone number too."),
    ("Can you tell me about the um", "opening hours on Sunday?"),
]


def pct(values: list[float], p: float) -> str:
    return f"{percentile(values, p / 100, empty=float('nan')):.0f}"


# ----------------------------------------------------------------------------------- audio


def clips() -> list[tuple[str, bytes, str]]:
    out = []
    for line in (DATA / "transcripts.tsv").read_text().splitlines():
        name, text = line.split("\t")
        with wave.open(str(DATA / name)) as w:
            out.append((name, w.readframes(w.getnframes()), text))
    return out


def frames_of(pcm: bytes, frame: int = FRAME) -> list[bytes]:
    pcm += b"\0" * (-len(pcm) % frame)
    return [pcm[i : i + frame] for i in range(0, len(pcm), frame)]


def levels(pcm: bytes) -> np.ndarray:
    x = np.frombuffer(pcm[: len(pcm) // FRAME * FRAME], "<i2").astype(float).reshape(-1, FRAME // 2)
    return np.sqrt((x**2).mean(axis=1))


def trim(pcm: bytes) -> bytes:
    """Cut room tone after the last voiced frame, so "speech end" is when the caller stopped."""
    lv = levels(pcm)
    voiced = np.flatnonzero(lv > 0.1 * lv.max())
    return pcm[max(0, voiced[0] - 5) * FRAME : (voiced[-1] + 1) * FRAME]


def with_pause(pcm: bytes, pause_ms: int) -> bytes | None:
    """The clip with `pause_ms` of silence spliced into its quietest word gap in the middle."""
    lv = levels(pcm)
    voiced = np.flatnonzero(lv > 0.1 * lv.max())
    lo, hi = (
        voiced[0] + (voiced[-1] - voiced[0]) * 3 // 10,
        voiced[0] + (voiced[-1] - voiced[0]) * 7 // 10,
    )
    if hi - lo < 10:
        return None
    window = np.convolve(lv[lo:hi], np.ones(4) / 4, mode="same")
    cut = (lo + int(np.argmin(window))) * FRAME
    return pcm[:cut] + b"\0" * (RATE * pause_ms // 1000 * 2) + pcm[cut:]


def noise_burst(ms: int, seed: int) -> bytes:
    """A cough- or clatter-like burst: decaying broadband noise."""
    rng = np.random.default_rng(seed)
    n = RATE * ms // 1000
    env = np.exp(-np.linspace(0, 4, n))
    return (rng.standard_normal(n) * 6000 * env).clip(-32768, 32767).astype("<i2").tobytes()


def floor_frame(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(FRAME // 2) * 20).astype("<i2").tobytes()


async def tts_clips(texts: list[str]) -> dict[str, bytes]:
    """Speech from the embedded TTS (Piper), at 16 kHz."""
    from voicebot.providers import AudioFormat
    from voicebot.providers.workers import WorkerPool
    from voicebot_plugins.tts_piper import PiperTTS

    tts = PiperTTS(workers=WorkerPool())
    await tts.start()
    out = {}
    try:
        for text in dict.fromkeys(texts):
            chunks, rate = [], RATE
            async for chunk in tts.synthesize(text, AudioFormat(sample_rate=RATE)):
                chunks.append(chunk.data)
                rate = chunk.sample_rate
            pcm = b"".join(chunks)
            if rate != RATE:
                rs = Resampler(rate, RATE)
                pcm = rs.process(pcm) + rs.flush()
            out[text] = pcm
    finally:
        await tts.aclose()
    return out


# --------------------------------------------------------------------------------- callers


class WideCall:
    """One `/ws/voice` call at 16 kHz PCM16, its microphone always open (speech or floor)."""

    def __init__(self, port: int) -> None:
        self.url = f"ws://127.0.0.1:{port}/ws/voice?sample_rate={RATE}"
        self.mic: list[bytes] = []
        self.events: list[tuple[float, dict]] = []
        self.audio_at: list[float] = []
        self.speech_end: float | None = None
        self.changed = asyncio.Event()

    async def __aenter__(self) -> WideCall:
        self.ws = await websockets.connect(self.url, max_queue=None, open_timeout=60)
        self.tasks = [asyncio.ensure_future(self._read()), asyncio.ensure_future(self._mic())]
        return self

    async def __aexit__(self, *exc) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.ws.close()

    async def _mic(self) -> None:
        quiet = floor_frame(1)
        start, n = time.perf_counter(), 0
        while True:
            await asyncio.sleep(max(0.0, start + n * FRAME_MS / 1000 - time.perf_counter()))
            if self.mic:
                await self.ws.send(self.mic.pop(0))
                if not self.mic:
                    self.speech_end = time.perf_counter()
                    self.changed.set()
            else:
                await self.ws.send(quiet)
            n += 1

    async def _read(self) -> None:
        async for msg in self.ws:
            now = time.perf_counter()
            if isinstance(msg, bytes):
                self.audio_at.append(now)
            else:
                self.events.append((now, json.loads(msg)))
            self.changed.set()

    async def until(self, pred, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while not pred():
            self.changed.clear()
            left = deadline - time.perf_counter()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                return False
        return True

    def statuses(self, name: str, after: float = 0.0) -> int:
        return sum(
            1
            for t, e in self.events
            if t >= after and e.get("type") == "status" and e["status"] == name
        )

    def finals(self, after: float = 0.0) -> list[str]:
        return [
            e["text"]
            for t, e in self.events
            if t >= after and e.get("type") == "transcript" and e.get("final")
        ]

    def audio_after(self, t: float) -> list[float]:
        return [a for a in self.audio_at if a > t]

    async def greeting_done(self, timeout: float = 30) -> None:
        await self.until(lambda: self.statuses("listening") >= 1 and self.audio_at, timeout)

    async def say(self, pcm: bytes) -> float:
        """Queue speech on the open microphone; returns when it has all been sent."""
        self.speech_end = None
        self.mic = frames_of(pcm)
        await self.until(lambda: self.speech_end is not None, len(pcm) / RATE / 2 + 5)
        return self.speech_end or time.perf_counter()


class PhoneCall:
    """One Twilio media-stream call: 8 kHz μ-law in real time, marks echoed once "played"."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sid = "MZ" + os.urandom(16).hex()
        self.mic: list[bytes] = []
        self.playout_end = 0.0
        self.handles: list[asyncio.TimerHandle] = []
        self.sends: set[asyncio.Task] = set()
        self.sent = asyncio.Event()

    async def __aenter__(self) -> PhoneCall:
        import xml.etree.ElementTree as ET

        call_sid = "CA" + self.sid[2:]
        form = {"CallSid": call_sid, "From": "+15550001111", "To": "+15550002222"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"http://127.0.0.1:{self.port}/twilio/voice", data=form) as r,
        ):
            twiml = ET.fromstring(await r.text())
        params = {p.get("name"): p.get("value") for p in twiml.iter("Parameter")}
        self.ws = await websockets.connect(
            f"ws://127.0.0.1:{self.port}/twilio/media", max_queue=None, open_timeout=60
        )
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
        self.last_media = time.perf_counter()
        self.got_media = False
        self.tasks = [asyncio.ensure_future(self._read()), asyncio.ensure_future(self._mic())]
        return self

    async def __aexit__(self, *exc) -> None:
        for h in self.handles:
            h.cancel()
        try:
            await self.ws.send(json.dumps({"event": "stop", "streamSid": self.sid, "stop": {}}))
        except websockets.ConnectionClosed:
            pass
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.ws.close()

    async def _mic(self) -> None:
        quiet = base64.b64encode(b"\xff" * 160).decode()
        start, n = time.perf_counter(), 0
        while True:
            await asyncio.sleep(max(0.0, start + n * FRAME_MS / 1000 - time.perf_counter()))
            payload = self.mic.pop(0) if self.mic else quiet
            if not self.mic:
                self.sent.set()
            media = {"track": "inbound", "timestamp": str(n * FRAME_MS), "payload": payload}
            await self.ws.send(
                json.dumps({"event": "media", "streamSid": self.sid, "media": media})
            )
            n += 1

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        async for raw in self.ws:
            msg = json.loads(raw)
            now = loop.time()
            if msg["event"] == "media":
                self.got_media = True
                self.last_media = time.perf_counter()
                self.playout_end = max(self.playout_end, now) + FRAME_MS / 1000
            elif msg["event"] == "mark":
                self.handles.append(loop.call_at(max(self.playout_end, now), self._echo, msg))
            elif msg["event"] == "clear":
                self.playout_end = now

    def _echo(self, msg: dict) -> None:
        task = asyncio.ensure_future(self.ws.send(json.dumps(msg)))
        self.sends.add(task)
        task.add_done_callback(self.sends.discard)

    async def greeting_done(self, timeout: float = 30) -> None:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.got_media and time.perf_counter() - self.last_media > 0.5:
                return
            await asyncio.sleep(0.05)

    async def say(self, pcm16k: bytes) -> None:
        rs = Resampler(RATE, 8000)
        mulaw = encode(rs.process(pcm16k) + rs.flush(), "mulaw")
        self.sent.clear()
        self.mic = [base64.b64encode(f).decode() for f in frames_of(mulaw, 160)]
        # the stream may close under it (a server error): that must not hang the benchmark
        sent = asyncio.ensure_future(self.sent.wait())
        await asyncio.wait([sent, self.tasks[1]], return_when=asyncio.FIRST_COMPLETED)
        sent.cancel()


# ------------------------------------------------------------------------------- measures


APOLOGY = "Sorry, I'm having trouble"  # pipeline.apology: what a failed STT makes the bot say
#: clips whose transcript missed the STT deadline (a loaded machine): their words count as lost
stt_failed = {"wide": 0, "phone": 0}


async def wer_wide(port: int, data, v2v: list[float]) -> tuple[int, int]:
    errors = words = 0
    for _name, pcm, ref in data:
        async with WideCall(port) as call:
            await call.greeting_done()
            await asyncio.sleep(0.3)
            t0 = time.perf_counter()
            end = await call.say(trim(pcm))
            await call.until(lambda c=call, t0=t0, end=end: c.finals(t0) and c.audio_after(end), 15)
            hyp = " ".join(call.finals(t0))
            failed = any(
                e.get("type") == "error" and e.get("code") == "stt_failed"
                for t, e in call.events
                if t >= t0
            )
            stt_failed["wide"] += failed
            reply = [a for a in call.audio_at if a > end]
            if reply and not failed:  # the apology is no answer
                v2v.append(1000 * (reply[0] - end))
            e, n = word_errors(ref, hyp)
            errors, words = errors + e, words + n
    return errors, words


def tap_lines(path: Path, start: int) -> list[dict]:
    """What the tap plugin wrote (a few small lines: read inline)."""
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(x) for x in lines[start:]]


async def wer_phone(port: int, data, tap: Path, verbose: bool) -> tuple[int, int]:
    errors = words = 0
    for name, pcm, ref in data:
        start = len(tap_lines(tap, 0))
        async with PhoneCall(port) as call:
            await call.greeting_done()
            await call.say(trim(pcm))
            deadline = time.perf_counter() + 15
            while time.perf_counter() < deadline:
                if any(r["kind"] == "transcript" for r in tap_lines(tap, start)):
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)
        # the hang-up hands the caller's last words to the record: wait for the call to end, so
        # they count for this clip and not for the next one
        deadline = time.perf_counter() + 15
        while time.perf_counter() < deadline:
            if any(r["kind"] == "ended" for r in tap_lines(tap, start)):
                break
            await asyncio.sleep(0.1)
        records = tap_lines(tap, start)
        ended = next((r["call"] for r in records if r["kind"] == "ended"), None)
        hyp = " ".join(
            r["text"]
            for r in records
            if r["kind"] == "transcript" and (ended is None or r["call"] == ended)
        )
        stt_failed["phone"] += any(
            r["kind"] == "bot" and r["text"].startswith(APOLOGY) and r["call"] == ended
            for r in records
        )
        e, n = word_errors(ref, hyp)
        errors, words = errors + e, words + n
        if verbose:
            print(f"  phone {name}: {e} errors  ref: {ref}  heard: {hyp}")
    return errors, words


async def over_greeting(port: int, data) -> tuple[int, int]:
    """Speech said while the (long) greeting plays: how many of its words never arrive."""
    lost = words = 0
    for _name, pcm, ref in data:
        async with WideCall(port) as call:
            await call.until(lambda: len(call.audio_at) > 25, 20)  # 0.5 s into the greeting
            t0 = time.perf_counter()
            await call.say(trim(pcm))
            await call.until(lambda c=call, t0=t0: c.statuses("listening", t0) and c.finals(t0), 20)
            await asyncio.sleep(1.0)
            hyp = " ".join(call.finals(t0))
            ref_w, hyp_w = normalize_words(ref), normalize_words(hyp)
            missing = sum(max(0, ref_w.count(w) - hyp_w.count(w)) for w in set(ref_w))
            lost, words = lost + missing, words + len(ref_w)
    return lost, words


async def cut_offs(port: int, utterances: list[bytes], v2v: list[float]) -> tuple[int, int]:
    """Utterances with a pause: a cut-off is the bot answering (a `response`) before the caller
    finished, or the utterance taken as more than one turn (more than one final transcript)."""
    cut = 0
    for pcm in utterances:
        async with WideCall(port) as call:
            await call.greeting_done()
            await asyncio.sleep(0.3)
            t0 = time.perf_counter()
            end = await call.say(pcm)
            await call.until(lambda c=call, end=end: c.audio_after(end), 15)
            early = [t for t, e in call.events if t0 <= t < end and e.get("type") == "response"]
            if early or len(call.finals(t0)) > 1:
                cut += 1
            reply = call.audio_after(end)
            if reply:
                v2v.append(1000 * (reply[0] - end))
    return cut, len(utterances)


async def false_stops(port: int, stimuli: list[bytes]) -> tuple[int, int, float]:
    """One call: stimuli every ~2.5 s while the long greeting plays. Returns (stops, turns made
    of them, seconds of bot speech received)."""
    async with WideCall(port) as call:
        await call.until(lambda: len(call.audio_at) > 50, 20)
        t0 = time.perf_counter()
        for pcm in stimuli:
            await call.say(pcm)
            await asyncio.sleep(2.5)
        await call.until(lambda: call.statuses("listening", t0), 30)
        await asyncio.sleep(1.0)
        stops = call.statuses("interrupted", t0)
        turns = len(call.finals(t0))
        speech_s = len(call.audio_at) * FRAME_MS / 1000
    return stops, turns, speech_s


# ------------------------------------------------------------------------------ the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    tmp: Path, port: int, tap: Path, greeting: str, args: argparse.Namespace
) -> subprocess.Popen:
    features_off, stt_model, stt_deadline_ms = (
        args.features_off,
        args.stt_model,
        args.stt_deadline_ms,
    )
    cfg: dict = {
        "server": {"host": "127.0.0.1"},
        "plugins": ["benchmarks.conversation_tap"],
        "providers": {
            "vad": {"use": "silero"},
            "stt": {"use": "whisper", "model": stt_model},
            "tts": {"use": "piper"},
        },
        "dialogue": {"mode": "echo", "greeting": greeting, "noinput_timeout_ms": 0},
        "telephony": {"twilio": {"allow_unsigned": True}},  # loopback only
        # loopback, and a loaded machine sends in bursts: no per-client or real-time audio limits
        "security": {
            "limits": {
                "max_connections_per_client": 0,
                "audio_realtime_factor": 100,
                "audio_burst_s": 60,
            }
        },
    }
    if stt_deadline_ms:  # a loaded machine: slow decodes count as latency, not lost words
        cfg["pipeline"] = {"deadlines": {"stt": {"first_result_ms": stt_deadline_ms}}}
    if features_off:  # issue 17's behaviours off: the pipeline as it was before them
        cfg.setdefault("pipeline", {}).update(
            {
                "barge_in": {"backchannel_ms": 0, "resume_timeout_ms": 0},
                "end_of_turn": {"unfinished_wait_ms": 0},
            }
        )
    path = tmp / f"config-{port}.yaml"
    path.write_text(json.dumps(cfg))
    env = {**os.environ, "VOICEBOT_CONVERSATION_TAP": str(tap), "PYTHONPATH": str(ROOT)}
    # one process: a Twilio stream must reach the worker whose webhook minted its token
    cmd = [sys.executable, "-m", "voicebot.cli", "run", str(path), "--port", str(port)]
    cmd += ["--workers", "1"]
    server = subprocess.Popen(
        # one worker: `voicebot run` starts one per core by default, and a Twilio stream token
        # minted by one worker's /twilio/voice is unknown to another, which refuses the stream
        # (the kernel spreads connections over SO_REUSEPORT workers): half the phone clips lost
        [*cmd, "--workers", "1", "--log-level", "WARNING"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return server


def wait_healthy(server: subprocess.Popen, port: int) -> None:
    for _ in range(1200):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return  # 200: models loaded (503 while they load)
        except OSError:
            if server.poll() is not None:
                raise SystemExit("the server exited while starting") from None
        time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not become healthy")


async def run(args) -> None:
    tmp = Path(tempfile.mkdtemp())
    tap = tmp / "tap.jsonl"
    data = clips()
    spoken = await tts_clips(BACKCHANNELS + [p for pair in PAUSED_TTS for p in pair])
    paused = [
        p
        for p in (
            with_pause(trim(pcm), 600 + 100 * (i % 4))
            for i, (_, pcm, ref) in enumerate(data)
            if len(ref.split()) >= 6
        )
        if p is not None
    ]
    paused += [
        trim(spoken[a]) + b"\0" * (RATE * (600 + 100 * i) // 1000 * 2) + trim(spoken[b])
        for i, (a, b) in enumerate(PAUSED_TTS)
    ]
    backchannels = [trim(spoken[t]) for t in BACKCHANNELS]
    bursts = [noise_burst(120 + 60 * i, i) for i in range(6)]
    servers = []
    try:
        short_port = args.port or free_port()
        long_port = args.long_port or free_port()
        if not args.port:
            for port, greeting in ((short_port, "Hi."), (long_port, LONG_GREETING)):
                servers.append(start_server(tmp, port, tap, greeting, args))
            for server, port in zip(servers, (short_port, long_port), strict=True):
                wait_healthy(server, port)
        t0 = time.perf_counter()
        v2v: list[float] = []
        we, wn = await wer_wide(short_port, data, v2v)
        pe, pn = await wer_phone(short_port, data, tap, args.verbose)
        print(f"WER wide (/ws/voice 16 kHz PCM): {100 * we / wn:.1f} % ({we}/{wn} words)")
        print(f"WER phone (Twilio 8 kHz μ-law): {100 * pe / pn:.1f} % ({pe}/{pn} words)")
        print(
            f"clips whose transcript missed the STT deadline (CPU starved): "
            f"wide {stt_failed['wide']}, phone {stt_failed['phone']} of {len(data)}"
        )
        if args.only_wer:
            print(
                f"voice-to-voice (wide): p50 {pct(v2v, 50)} ms, p95 {pct(v2v, 95)} ms, n={len(v2v)}"
            )
            return
        lost, lw = await over_greeting(long_port, [d for d in data if d[0] in args.over])
        cuts, nc = await cut_offs(short_port, paused, v2v)
        bs, bt, bsec = await false_stops(long_port, backchannels)
        ns, nt, nsec = await false_stops(long_port, bursts)
        print(f"words lost talking over the greeting: {100 * lost / lw:.1f} % ({lost}/{lw})")
        print(f"mid-sentence cut-offs: {100 * cuts / nc:.0f} % ({cuts}/{nc} paused utterances)")
        print(
            f"false stops per minute of bot speech: backchannels {60 * bs / bsec:.1f} "
            f"({bs} stops, {bt} became turns, {bsec:.0f} s of bot speech); noise bursts "
            f"{60 * ns / nsec:.1f} ({ns} stops, {nt} turns, {nsec:.0f} s)"
        )
        print(f"voice-to-voice (wide): p50 {pct(v2v, 50)} ms, p95 {pct(v2v, 95)} ms, n={len(v2v)}")
        print(f"(measured in {time.perf_counter() - t0:.0f} s)")
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, help="a running server (greeting 'Hi.'), echo dialogue")
    ap.add_argument("--long-port", type=int, help="a running server with a long greeting")
    ap.add_argument(
        "--features-off",
        action="store_true",
        help="start the servers with backchannels, resume and end_of_turn off (the baseline)",
    )
    ap.add_argument("--stt-model", default="tiny.en", help="the whisper model: tiny.en, base")
    ap.add_argument(
        "--stt-deadline-ms",
        type=int,
        default=0,
        help="raise deadlines.stt.first_result_ms (default 10000): on a CPU-starved machine "
        "decodes miss it and the clip's words are lost, which is load, not accuracy",
    )
    ap.add_argument("--only-wer", action="store_true", help="only WER and v2v of the WER clips")
    ap.add_argument("--verbose", action="store_true", help="print each phone clip's transcript")
    ap.add_argument(
        "--over",
        nargs="*",
        default=["cards-005.wav", "goforward.wav", "forever.wav"],
        help="clips said over the greeting",
    )
    ap.add_argument(
        "--noise",
        action="store_true",
        help="instead: WER in synthetic café and street noise at 10 and 5 dB SNR, denoiser "
        "off and on (benchmarks/noise_mix.py; needs sox)",
    )
    ap.add_argument(
        "--noise-in-server",
        action="store_true",
        help="with --noise: the server runs the denoiser (exact, needs idle cores) instead of "
        "the benchmark cleaning the audio ahead with the same stream",
    )
    ap.add_argument("--noise-calls", type=int, default=3, help="with --noise: calls at once")
    ap.add_argument(
        "--noise-doors", nargs="+", default=["wide", "phone"], choices=["wide", "phone"]
    )
    args = ap.parse_args()
    if args.noise:
        from noise_mix import run_noise

        asyncio.run(run_noise(args))
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
