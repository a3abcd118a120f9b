"""The end-of-turn decision on its own, offline: how often it would cut a caller off mid-sentence,
and how often (and how long) it makes a caller who has finished wait, whatever the machine's load.

`benchmarks/conversation.py` measures the real race through a running server, where a slow
recogniser on a loaded machine hides cut-offs (the caller goes on before the transcript is in).
This takes the race out. The utterances are conversation.py's: the human recordings whole, the
same recordings with a 600-900 ms pause spliced at a word gap, and TTS sentences with a pause after
an unfinished phrase. Each is cut into pieces as a call cuts it (Silero VAD, the turn-taker with
the default hangover and minimum speech, the pre-roll in front), each piece is transcribed by the
embedded Whisper, and the default `pipeline.end_of_turn` rules judge the turn so far after each
piece. With the recogniser taken as instant:

- a cut-off: a piece before the last that is answered instead of waited on;
- a needless wait: the last piece waited on (the caller had finished), and for how long.

    python benchmarks/end_of_turn.py              # ~1 min
    PYTHONPATH=/path/to/old/checkout python benchmarks/end_of_turn.py   # another version's rules
"""

from __future__ import annotations

import asyncio
import time

from conversation import PAUSED_TTS, RATE, clips, trim, tts_clips, with_pause

from voicebot.call.endpointing import EndOfTurn
from voicebot.call.turns import Action, TurnSettings, TurnTaker
from voicebot.config.model import EndOfTurnConfig, PipelineConfig
from voicebot.providers.workers import WorkerPool


def pieces(pcm: bytes, vad, cfg: PipelineConfig) -> list[bytes]:
    """The utterances a call hands to STT: from the pre-roll before speech started to the first
    frame of the silence that ended it (the listener holds the hangover back from a recogniser
    that decodes speculatively, as Whisper does)."""
    frame = RATE * cfg.frame_ms // 1000 * 2
    turns = TurnTaker(
        TurnSettings(
            frame_ms=cfg.frame_ms, hangover_ms=cfg.vad_hangover_ms, min_speech_ms=cfg.min_speech_ms
        )
    )
    stream = vad.stream(RATE)
    preroll = max(1, cfg.preroll_ms // cfg.frame_ms)
    pcm += bytes(RATE * 2)  # silence after the caller stops, for the hangover to run out
    frames = [pcm[i : i + frame] for i in range(0, len(pcm) - frame + 1, frame)]
    out, start, silence_from = [], None, 0
    for i, f in enumerate(frames):
        for action in turns.on_frame((i + 1) * cfg.frame_ms, stream.process(f) >= vad.threshold):
            if action is Action.START_UTTERANCE:
                start = max(0, i - preroll)
            elif action is Action.SPECULATE:
                silence_from = i
            elif action is Action.END_UTTERANCE and start is not None:
                out.append(b"".join(frames[start : silence_from + 1]))
                start = None
            elif action is Action.CANCEL_UTTERANCE:
                start = None
    return out


def judge(texts: list[str], rules: EndOfTurnConfig) -> tuple[int, int]:
    """(early answers, wait after the last piece in ms) for one utterance's piece transcripts."""
    openers = getattr(rules, "unfinished_openers", None)  # older versions have none
    eot = EndOfTurn(rules.unfinished_words, *([openers] if openers is not None else []))
    unsure_ms = min(getattr(rules, "unsure_wait_ms", 0), rules.unfinished_wait_ms)
    early, so_far, wait = 0, "", 0
    for i, piece in enumerate(texts):
        so_far = " ".join(p for p in (so_far, piece.strip()) if p)
        if not so_far:
            continue
        if eot.unfinished(so_far):
            wait = rules.unfinished_wait_ms
        elif unsure_ms and hasattr(eot, "unsure") and eot.unsure(piece):
            wait = unsure_ms
        else:
            wait = 0
        if i < len(texts) - 1 and not wait:
            early += 1
            so_far = ""  # answered: the next piece is a turn of its own
    return early, wait


async def run() -> None:
    from voicebot_plugins.stt_whisper import WhisperSTT
    from voicebot_plugins.vad_silero import SileroVAD

    workers = WorkerPool()
    vad, stt = SileroVAD(workers=workers), WhisperSTT(workers=workers)
    await vad.start()
    await stt.start()
    data = clips()
    spoken = await tts_clips([p for pair in PAUSED_TTS for p in pair])
    cases = [(f"whole {name}", trim(pcm)) for name, pcm, _ in data]
    for i, (name, pcm, ref) in enumerate(data):  # as conversation.py splices its pauses
        paused = with_pause(trim(pcm), 600 + 100 * (i % 4)) if len(ref.split()) >= 6 else None
        if paused is not None:
            cases.append((f"paused {name}", paused))
    for i, (a, b) in enumerate(PAUSED_TTS):
        gap = bytes(RATE * (600 + 100 * i) // 1000 * 2)
        cases.append((f"paused tts {a!r}", trim(spoken[a]) + gap + trim(spoken[b])))
    cfg, rules = PipelineConfig(), EndOfTurnConfig()
    t0 = time.perf_counter()
    cut = waited = wait_ms = paused_n = 0
    for label, pcm in cases:
        texts = [(await stt.transcribe(p, RATE)).text for p in pieces(pcm, vad, cfg)]
        early, wait = judge(texts, rules)
        cut += early > 0
        paused_n += label.startswith("paused")
        waited += wait > 0
        wait_ms += wait
        mark = "CUT " if early else ("wait" if wait else "ok  ")
        print(f"{mark} {label:45s} {' | '.join(texts)}" + (f"  (+{wait} ms)" if wait else ""))
    print(
        f"cut off mid-sentence: {cut}/{len(cases)} utterances ({100 * cut / len(cases):.0f} %); "
        f"needless waits: {waited} ({wait_ms} ms in all, {wait_ms / len(cases):.0f} ms an "
        f"utterance); {paused_n} of the utterances have a spliced pause "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    await stt.aclose()
    await vad.aclose()


if __name__ == "__main__":
    asyncio.run(run())
