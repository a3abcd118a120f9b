"""`voicebot bench`: N simulated callers against a server, to size a machine.

The load generator is a client (`websockets`), meant to run in its own process: against a
running server (`--url`), or against one it starts with fake providers (`--providers stub`, the
runtime alone; `--providers openai-fake`, the real OpenAI SDK against a loopback fake with model
think time). See docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import wave
from pathlib import Path
from typing import Any

from .load import Plan, frames, run_calls, voiced
from .report import histogram_buckets, histogram_quantile, summary, table
from .target import BenchError, fetch, proc_stats, started_server


def utterance(args: argparse.Namespace) -> list[bytes]:
    """The caller's words as 20 ms frames of 16 kHz PCM16."""
    if not args.utterance:
        return frames(voiced(args.speech_ms))
    if args.utterance.lower().endswith(".wav"):
        return frames(_wav_16k(Path(args.utterance)))
    return frames(asyncio.run(_spoken(args.utterance, args.config)))


def _wav_16k(path: Path) -> bytes:
    from ..audio import Resampler

    try:
        with wave.open(str(path)) as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise BenchError(f"{path}: need a mono 16-bit PCM WAV")
            rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    except (OSError, wave.Error, EOFError) as exc:
        raise BenchError(f"{path}: cannot read it as a WAV file: {exc}") from None
    if rate == 16000:
        return pcm
    rs = Resampler(rate, 16000)
    return rs.process(pcm) + rs.flush()


async def _spoken(text: str, config_path: str) -> bytes:
    from ..audio import AudioFormat
    from ..config import load_config
    from ..runtime import Runtime

    runtime = Runtime(load_config(config_path))
    await runtime.start_providers(["tts"])
    try:
        chunks = []
        async for chunk in runtime.providers["tts"].synthesize(text, AudioFormat(16000)):
            chunks.append(_to_16k(chunk))
        return b"".join(chunks)
    finally:
        await runtime.stop()


def _to_16k(chunk: Any) -> bytes:
    from ..audio import Resampler, decode

    pcm = decode(chunk.data, chunk.encoding)
    if chunk.sample_rate == 16000:
        return pcm
    rs = Resampler(chunk.sample_rate, 16000)
    return rs.process(pcm) + rs.flush()


def cmd_bench(args: argparse.Namespace) -> int:
    if args.calls < 1 or args.turns < 1:
        print("error: --calls and --turns must be at least 1", file=sys.stderr)
        return 2
    try:
        speech = utterance(args)
        if args.url:
            return _report(args, asyncio.run(_bench(args, args.url, args.server_pid, speech)))
        with started_server(args.providers, args.hangover_ms, args.server_arg) as (url, pid):
            return _report(args, asyncio.run(_bench(args, url, pid, speech)))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _report(args: argparse.Namespace, figures: dict[str, Any]) -> int:
    print(table(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


async def _bench(args: argparse.Namespace, url: str, pid: int | None, speech: list[bytes]):
    from tqdm import tqdm

    plan = Plan(
        protocol=args.protocol,
        url=url,
        calls=args.calls,
        turns=args.turns,
        ramp_s=args.ramp,
        utterance=speech,
        gap_ms=args.gap_ms,
        reply_timeout_s=args.reply_timeout,
    )
    if not isinstance(await asyncio.to_thread(fetch, f"{url}/health"), dict):
        raise BenchError(f"no voicebot server answers {url}/health")
    phone = args.protocol == "twilio"
    if phone:
        await asyncio.to_thread(fetch, f"{url}/telephony/stats?reset=1")
    v2v_before = histogram_buckets(await asyncio.to_thread(fetch, f"{url}/metrics"))
    idle = proc_stats(pid) if pid else None
    marks: dict[str, tuple[float, float, float]] = {}  # milestone → (time, cpu s, rss MB)

    def milestone(name: str) -> None:
        if pid and name not in marks:
            marks[name] = (time.monotonic(), *proc_stats(pid))

    # a bar on a terminal; nothing in a log or a pipe (tqdm's own check)
    with tqdm(total=plan.calls * plan.turns, unit="turn", file=sys.stderr, disable=None) as bar:
        started = time.monotonic()
        milestone("start")
        results = await run_calls(plan, on_turn=lambda: bar.update(1), milestone=milestone)
        milestone("end")
    v2v_after = histogram_buckets(await asyncio.to_thread(fetch, f"{url}/metrics"))
    phone_stats = await asyncio.to_thread(fetch, f"{url}/telephony/stats") if phone else None
    window = _steady_window(marks)
    lag = phone_stats.get("inbound_lag_ms") if isinstance(phone_stats, dict) else None
    return summary(
        plan,
        results,
        cpu_s=window[1] if window else None,
        window_s=window[0] if window else time.monotonic() - started,
        rss_idle_mb=idle[1] if idle else None,
        rss_busy_mb=marks["first_done"][2] if "first_done" in marks else None,
        server_v2v={q: histogram_quantile(v2v_before, v2v_after, p) for q, p in _SERVER_QS},
        server_frame_lag=lag,
        hangover_ms=None if args.url else args.hangover_ms,
    )


_SERVER_QS = (("p50", 0.5), ("p95", 0.95))


def _steady_window(marks: dict[str, tuple[float, float, float]]) -> tuple[float, float] | None:
    """(seconds, server CPU seconds) while every call was up and none had ended, when that
    lasted a second or more; else over the whole run. None without the server's pid."""
    if not marks:
        return None
    for a, b in (("all_up", "first_done"), ("start", "end")):
        if a in marks and b in marks and (marks[b][0] - marks[a][0] >= 1.0 or a == "start"):
            return max(1e-3, marks[b][0] - marks[a][0]), marks[b][1] - marks[a][1]
    return None
