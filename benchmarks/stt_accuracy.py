"""Word error rate of each STT on recorded human speech, at 16 kHz and through a phone line.

12 human utterances (benchmarks/data/speech, see its README for source and licence), each decoded
at 16 kHz and after an 8 kHz μ-law phone line (16k → 8k → μ-law → 16k with the same streaming
resamplers and codecs a Twilio call goes through). Every STT provider registered under the names
below is measured; one that is not installed is reported and skipped. Intent accuracy has its own
benchmark: benchmarks/intent_accuracy.py.

    python benchmarks/stt_accuracy.py [--stt whisper pocketsphinx]

Target (issue 5): WER ≤ 10 % through the phone line.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import wave
from pathlib import Path

from wer import word_errors  # benchmarks/wer.py: a script's folder is on sys.path

from voicebot.audio import Resampler, decode, encode
from voicebot.plugins import make_plugin_manager
from voicebot.providers import STTEvent
from voicebot.providers.workers import WorkerPool

DATA = Path(__file__).parent / "data" / "speech"
RATE = 16000
FRAME = RATE * 20 // 1000 * 2


def load_clips() -> list[tuple[str, bytes, str]]:
    clips = []
    for line in (DATA / "transcripts.tsv").read_text().splitlines():
        name, text = line.split("\t")
        with wave.open(str(DATA / name)) as w:
            assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
            clips.append((name, w.readframes(w.getnframes()), text))
    return clips


def phone_line(pcm16k: bytes) -> bytes:
    """What the pipeline gets from a Twilio caller saying `pcm16k`."""
    down, up = Resampler(RATE, 8000), Resampler(8000, RATE)
    ulaw = encode(down.process(pcm16k) + down.flush(), "mulaw")
    return up.process(decode(ulaw, "mulaw")) + up.flush()


async def recognise(stt, pcm: bytes) -> tuple[str, float]:
    """Feed 20 ms frames like the pipeline does; seconds from finalize() to the transcript."""
    stream = stt.stream(RATE)
    partials: list[STTEvent] = []
    stream.on_event = partials.append
    for i in range(0, len(pcm), FRAME):
        await stream.send(pcm[i : i + FRAME])
    t0 = time.perf_counter()
    transcript = await stream.finalize()
    elapsed = time.perf_counter() - t0
    await stream.aclose()
    return transcript.text, elapsed


async def bench_stt(names: list[str], clips, workers: WorkerPool, verbose: bool) -> None:
    registry = make_plugin_manager().registry
    audio_s = sum(len(pcm) for _, pcm, _ in clips) / 2 / RATE
    words = sum(len(text.split()) for *_, text in clips)
    print(f"STT: {len(clips)} human utterances, {audio_s:.1f} s, {words} words")
    for name in names:
        if name not in registry.names("stt"):
            print(f"  {name}: not installed (no `{name}` STT plugin registered) - skipped")
            continue
        stt = registry.provider("stt", name)(workers=workers)
        await stt.start()
        for line, transform in (("16 kHz", lambda p: p), ("phone 8k μ-law", phone_line)):
            errors = total = 0
            decode_s = 0.0
            for clip, pcm, ref in clips:
                hyp, elapsed = await recognise(stt, transform(pcm))
                e, n = word_errors(ref, hyp)
                errors, total, decode_s = errors + e, total + n, decode_s + elapsed
                if verbose and e:
                    print(f"      {clip}: {e} errors: {hyp!r}")
            print(
                f"  {name:12s} {line:15s} WER {100 * errors / total:5.1f} % ({errors}/{total})"
                f"  finalize→text {1000 * decode_s / len(clips):4.0f} ms/utt"
                f"  RTF {decode_s / audio_s:.3f}"
            )
        await stt.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stt", nargs="+", default=["whisper", "pocketsphinx"])
    parser.add_argument("-v", "--verbose", action="store_true", help="print every error")
    args = parser.parse_args()
    workers = WorkerPool()
    try:
        await bench_stt(args.stt, load_clips(), workers, args.verbose)
    finally:
        workers.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
