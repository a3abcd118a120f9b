"""Where the words go between the STT engine and the phone pipeline, clip by clip (issue 17).

For each recording in benchmarks/data/speech, the same Whisper engine the default config uses
transcribes:

- `clean`: the 16 kHz clip as recorded, whole;
- `phone`: the clip after the phone line (16 kHz → 8 kHz μ-law → 16 kHz, the resamplers and
  codec the pipeline and the benchmark use), whole;
- `cut`: the phone audio as the pipeline cuts it: Silero VAD and the turn-taker at the default
  settings, each utterance with its pre-roll, decoded one by one and joined as text;
- `joined`: the same utterances decoded together as one audio (what the pipeline now does for
  the pieces of one turn).

No server: the stages run in-process so each one's loss is seen alone; the full pipeline over a
real socket is `benchmarks/conversation.py`.

    python benchmarks/wer_stages.py [--model base] [--preroll-ms 200] [--threshold 0.5]
"""

from __future__ import annotations

import argparse
import asyncio

from conversation import clips, frames_of, trim
from wer import word_errors

from voicebot.audio import Resampler, decode, encode
from voicebot.call.turns import Action, TurnSettings, TurnTaker
from voicebot.providers.workers import WorkerPool

RATE = 16000


def phone_line(pcm: bytes) -> bytes:
    down = Resampler(RATE, 8000)
    mulaw = encode(down.process(pcm) + down.flush(), "mulaw")
    up = Resampler(8000, RATE)
    return b"".join(up.process(decode(f, "mulaw")) for f in frames_of(mulaw, 160))


def utterances(
    vad, pcm: bytes, preroll_ms: int, hangover_ms: int, threshold: float, keep: float
) -> list[bytes]:
    """The utterances the listener hands STT: VAD and turn-taking frame by frame, pre-roll
    prepended, then the caller's silence after the clip (as on a live line)."""
    stream = vad.stream(RATE)
    turns = TurnTaker(TurnSettings(hangover_ms=hangover_ms))
    preroll: list[bytes] = []
    n_preroll = max(1, preroll_ms // 20)
    out: list[bytes] = []
    current: bytearray | None = None
    now = 0.0
    for frame in frames_of(pcm + bytes(RATE * 2)):
        now += 20
        speech = stream.process(frame) >= (keep if turns.in_utterance else threshold)
        if turns.in_utterance and current is not None:
            current += frame
        for action in turns.on_frame(now, speech):
            if action is Action.START_UTTERANCE:
                current = bytearray(b"".join(preroll) + frame)
            elif action is Action.END_UTTERANCE and current is not None:
                out.append(bytes(current))
                current = None
            elif action is Action.CANCEL_UTTERANCE:
                current = None
        if not turns.in_utterance:
            preroll = [*preroll, frame][-n_preroll:]
    return out


async def main(args) -> None:
    from voicebot_plugins.stt_whisper import WhisperSTT
    from voicebot_plugins.vad_silero import SileroVAD

    workers = WorkerPool()
    options = WhisperSTT.Options(model=args.model, model_path=args.model_path)
    stt = WhisperSTT(options, workers=workers)
    vad = SileroVAD(workers=workers)
    await stt.start()
    await vad.start()
    totals = dict.fromkeys(args.stages, 0)
    words = 0
    for name, pcm, ref in clips():
        line = phone_line(trim(pcm))
        threshold = args.threshold or vad.threshold
        keep = args.keep_threshold or threshold
        pieces = utterances(vad, line, args.preroll_ms, args.hangover_ms, threshold, keep)
        hyps = {}
        if "clean" in args.stages:
            hyps["clean"] = (await stt.transcribe(pcm, RATE)).text
        if "phone" in args.stages:
            hyps["phone"] = (await stt.transcribe(line, RATE)).text
        if "cut" in args.stages:
            hyps["cut"] = " ".join([(await stt.transcribe(p, RATE)).text for p in pieces])
        if "joined" in args.stages:
            hyps["joined"] = (await stt.transcribe(b"".join(pieces), RATE)).text
        words += len(ref.split())
        print(f"{name}  ({len(pieces)} utterance(s))  ref: {ref}")
        for stage, hyp in hyps.items():
            e, _n = word_errors(ref, hyp)
            totals[stage] += e
            print(f"  {stage:7} {e:2} errors  {hyp}")
    print("WER by stage: " + ", ".join(f"{s} {100 * e / words:.1f} %" for s, e in totals.items()))
    await stt.aclose()
    await vad.aclose()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny.en", help="the bundled Whisper model: tiny.en, base")
    ap.add_argument("--model-path", default="", help="a CTranslate2 Whisper model directory")
    ap.add_argument("--preroll-ms", type=int, default=200)
    ap.add_argument("--hangover-ms", type=int, default=300)
    ap.add_argument("--threshold", type=float, help="VAD speech threshold (default: the VAD's)")
    ap.add_argument("--keep-threshold", type=float, help="threshold once speech started")
    ap.add_argument("--stages", nargs="*", default=["clean", "phone", "cut", "joined"])
    asyncio.run(main(ap.parse_args()))
