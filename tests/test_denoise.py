"""The `rnnoise` denoiser (RNNoise from the pyrnnoise wheel) and the per-call stage that runs it
off the event loop: sizes, rates, continuity, what it removes and what it keeps."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest

from voicebot.audio import Resampler, rms
from voicebot.call.denoise import MAX_LAG_MS, DenoiseStage, denoise_clip
from voicebot.providers import DenoiserStream, ProviderError
from voicebot.providers.workers import WorkerPool
from voicebot_plugins.denoise_rnnoise import RNNoiseDenoiser

SPEECH = Path(__file__).parent.parent / "benchmarks" / "data" / "speech" / "goforward.wav"


@pytest.fixture(scope="module")
def denoiser() -> RNNoiseDenoiser:
    d = RNNoiseDenoiser()
    asyncio.run(d.start())
    return d


def speech(rate: int) -> bytes:
    with wave.open(str(SPEECH)) as w:
        pcm, source = w.readframes(w.getnframes()), w.getframerate()
    if rate != source:
        r = Resampler(source, rate)
        pcm = r.process(pcm) + r.flush()
    return pcm


def white_noise(rate: int, seconds: float, level: float = 1000.0, seed: int = 7) -> bytes:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(rate * seconds)) * level).astype("<i2").tobytes()


def in_frames(stream: DenoiserStream, pcm: bytes, rate: int, frame_ms: int) -> bytes:
    size = rate * frame_ms // 1000 * 2
    pcm = pcm[: len(pcm) // size * size]
    return b"".join(stream.process(pcm[i : i + size]) for i in range(0, len(pcm), size))


def db(ratio: float) -> float:
    return 20 * np.log10(ratio)


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_every_frame_comes_back_the_same_size(denoiser, rate: int, frame_ms: int) -> None:
    stream = denoiser.stream(rate)
    size = rate * frame_ms // 1000 * 2
    noise = white_noise(rate, 0.5)
    for i in range(0, len(noise) - size, size):
        assert len(stream.process(noise[i : i + size])) == size


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_noise_is_removed_and_speech_kept(denoiser, rate: int) -> None:
    noise = white_noise(rate, 3.0)
    cleaned = in_frames(denoiser.stream(rate), noise, rate, 20)
    half = len(cleaned) // 2  # once it has learnt the noise
    assert db(rms(cleaned[half:]) / rms(noise[half:])) < -20

    clip = speech(rate)
    kept = in_frames(denoiser.stream(rate), clip, rate, 20)
    assert abs(db(rms(kept) / rms(clip[: len(kept)]))) < 3


@pytest.mark.parametrize("rate", [8000, 16000])
def test_speech_in_noise_comes_out_cleaner(denoiser, rate: int) -> None:
    """Speech mixed with noise at 5 dB SNR: what is left of the noise (output minus the cleaned
    clean speech) is far quieter than the noise that went in."""
    clip = speech(rate)
    x = np.frombuffer(clip, "<i2").astype(np.float64)
    noise = np.frombuffer(white_noise(rate, len(x) / rate), "<i2").astype(np.float64)[: len(x)]
    noise *= rms(clip) / np.sqrt((noise**2).mean()) / 10 ** (5 / 20)
    noisy = (x + noise).clip(-32768, 32767).astype("<i2").tobytes()
    out = np.frombuffer(in_frames(denoiser.stream(rate), noisy, rate, 20), "<i2")
    ref = np.frombuffer(in_frames(denoiser.stream(rate), clip, rate, 20), "<i2")
    residue = out.astype(np.float64) - ref
    assert db(np.sqrt((residue**2).mean()) / np.sqrt((noise**2).mean())) < -6


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_state_carries_across_frames(denoiser, rate: int) -> None:
    """Cut into 20 ms frames or 60 ms chunks, the same audio comes out: the resamplers and the
    RNNoise state carry on across calls to `process`."""
    clip = speech(rate)[: rate * 2 * 12 // 10 // 6 * 6]  # a multiple of 60 ms (1.2 s)
    assert in_frames(denoiser.stream(rate), clip, rate, 20) == in_frames(
        denoiser.stream(rate), clip, rate, 60
    )


def test_calls_do_not_share_state(denoiser) -> None:
    """Two calls' frames interleaved give each call what it gets alone."""
    rate, size = 16000, 640
    a, b = speech(rate), white_noise(rate, 2.0)
    n = min(len(a), len(b)) // size * size
    alone_a = in_frames(denoiser.stream(rate), a[:n], rate, 20)
    alone_b = in_frames(denoiser.stream(rate), b[:n], rate, 20)
    sa, sb = denoiser.stream(rate), denoiser.stream(rate)
    mixed_a, mixed_b = bytearray(), bytearray()
    for i in range(0, n, size):
        mixed_a += sa.process(a[i : i + size])
        mixed_b += sb.process(b[i : i + size])
    assert bytes(mixed_a) == alone_a and bytes(mixed_b) == alone_b


@pytest.mark.parametrize(("rate", "delay"), [(8000, 24.0), (16000, 22.0), (48000, 20.0)])
def test_delay_is_reported_as_measured(denoiser, rate: int, delay: float) -> None:
    stream = denoiser.stream(rate)
    clip = speech(rate)
    out = np.frombuffer(in_frames(stream, clip, rate, 20), "<i2").astype(np.float64)
    x = np.frombuffer(clip, "<i2").astype(np.float64)[: len(out)]
    n = len(out)  # the lag that best lines the output up with the input (FFT correlation)
    corr = np.fft.irfft(np.fft.rfft(out, 2 * n) * np.conj(np.fft.rfft(x, 2 * n)))
    lag = int(np.argmax(corr[: rate // 10]))  # within 100 ms
    assert stream.delay_ms == delay
    assert abs(lag * 1000 / rate - delay) <= 1.0


def test_odd_byte_counts_are_refused(denoiser) -> None:
    with pytest.raises(ProviderError, match="even number of bytes"):
        denoiser.stream(16000).process(b"\0" * 641)


def test_a_whole_clip_keeps_its_end(denoiser) -> None:
    """The `audio` message's utterance: its last words come out although the output is late."""
    rate = 16000
    x = np.frombuffer(speech(rate), "<i2")
    levels = np.sqrt((x[: len(x) // 320 * 320].reshape(-1, 320).astype(float) ** 2).mean(1))
    end = (int(np.argmax(levels)) + 1) * 320
    clip = x[:end].tobytes()  # cut mid-word, right after its loudest 20 ms
    stream = denoiser.stream(rate)
    out = np.frombuffer(denoise_clip(stream, clip, rate), "<i2")
    late = int(stream.delay_ms * rate / 1000)
    last = slice(end - 320, end)  # its last 20 ms
    kept = out[last.start + late : last.stop + late]
    assert len(kept) == 320
    assert abs(db(rms(kept.tobytes()) / rms(x[last].tobytes()))) < 6


# ---------------------------------------------------------------------------- the call's stage


class Doubler(DenoiserStream):
    """Frames back doubled; fails on request; notes the jobs it was given."""

    def __init__(self) -> None:
        self.jobs: list[int] = []
        self.fail = False

    def process(self, pcm: bytes) -> bytes:
        if self.fail:
            raise RuntimeError("boom")
        self.jobs.append(len(pcm))
        x = np.frombuffer(pcm, "<i2").astype(np.int32) * 2
        return x.astype("<i2").tobytes()


def frame(i: int) -> bytes:
    return np.full(160, i, dtype="<i2").tobytes()


class Sink(list):
    """The frames the stage hands on (on the event loop), and an event once `n` have come."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.full = n, asyncio.Event()

    def __call__(self, frame: bytes) -> None:
        self.append(frame)
        if len(self) >= self.n:
            self.full.set()


async def run_stage(stage: DenoiseStage, out: Sink) -> None:
    task = asyncio.ensure_future(stage.run())
    try:
        await asyncio.wait_for(out.full.wait(), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_stage_keeps_order_and_batches_while_a_job_is_out() -> None:
    stream, out = Doubler(), Sink(30)
    stage = DenoiseStage(stream, WorkerPool(1), out, 10, "c1")
    for i in range(30):
        stage.push(frame(i))
    await run_stage(stage, out)
    assert out == [(np.frombuffer(frame(i), "<i2") * 2).astype("<i2").tobytes() for i in range(30)]
    assert len(stream.jobs) < 30  # pushed while nothing ran: fewer, larger jobs


async def test_stage_passes_audio_on_when_the_denoiser_fails(caplog) -> None:
    stream, out = Doubler(), Sink(5)
    stream.fail = True
    stage = DenoiseStage(stream, WorkerPool(1), out, 10, "c2")
    for i in range(5):
        stage.push(frame(i))
    await run_stage(stage, out)
    assert out == [frame(i) for i in range(5)] and stage.passed == 5
    assert sum("passing audio on uncleaned" in r.message for r in caplog.records) == 1


async def test_stage_sheds_cleaning_not_audio_when_the_workers_are_behind(caplog) -> None:
    """Frames that waited more than MAX_LAG_MS go on uncleaned, in order, before the rest."""
    stream, out = Doubler(), Sink(50)
    stage = DenoiseStage(stream, WorkerPool(1), out, 20, "c4")
    for i in range(50):  # a second of audio arrived while no worker was free
        stage.push(frame(i))
    await run_stage(stage, out)
    late = 50 - MAX_LAG_MS // 20
    doubled = [(np.frombuffer(frame(i), "<i2") * 2).astype("<i2").tobytes() for i in range(50)]
    assert out == [frame(i) for i in range(late)] + doubled[late:]
    assert stage.passed == late and stage.frames == 50 - late
    assert sum("passing audio on uncleaned" in r.message for r in caplog.records) == 1


def test_stage_backlog_is_bounded() -> None:
    stage = DenoiseStage(Doubler(), WorkerPool(1), lambda f: None, 20, "c3")
    for i in range(500):
        stage.push(frame(i))
    assert len(stage._backlog) == 100 and stage.dropped == 400
