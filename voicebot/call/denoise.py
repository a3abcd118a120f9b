"""The optional noise-suppression stage between a call's decoded frames and its VAD (and so STT).

A suppressor such as RNNoise costs 2-4 ms of CPU per 20 ms frame, a hundred times what
the rest of the inbound path costs, so it never runs on the event loop: frames wait in a short
per-call backlog, and one job at a time takes the whole backlog to a worker thread. Under light
load that is one frame per job (the least delay); when the workers fall behind, jobs grow and the
loop's per-job overhead is shared by more frames. The cleaned frames come back in order to the
sink (VAD, turn-taking, STT) as if they had just arrived.

The workers are a pool of the denoiser's own (`Denoiser.frame_pool`), not the inference pool: a
two-second Whisper decode queued ahead of a 20 ms frame would otherwise hold up barge-in and
end-of-turn detection on every call.

When the workers cannot keep up (RNNoise costs 11-18 % of a core per call: docs/providers.md),
the stage sheds cleaning, not audio or time: frames that have waited more than `MAX_LAG_MS` go on
uncleaned, so the VAD is never more than that behind the caller. A job that fails hands its frames
on uncleaned too (each logged once per call). Only a backlog beyond `MAX_BACKLOG_MS` (a worker
stuck that long) drops its oldest frames, as the STT queue sheds audio rather than memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from ..providers import DenoiserStream
from ..providers.workers import WorkerPool

log = logging.getLogger("voicebot.call")

MAX_BACKLOG_MS = 2000  # frames waiting for a worker, per call
MAX_LAG_MS = 300  # frames older than this when a job starts go on uncleaned
MAX_JOB_MS = 500  # at most this much audio per job, so one call cannot hold a worker for long


class DenoiseStage:
    """One call's frames through its own `DenoiserStream`, off the loop, in order."""

    def __init__(
        self,
        stream: DenoiserStream,
        pool: WorkerPool,
        sink: Callable[[bytes], None],
        frame_ms: int,
        call_id: str,
    ) -> None:
        self._stream = stream
        self._pool = pool
        self._sink = sink
        self._call_id = call_id
        self._backlog: deque[bytes] = deque(maxlen=max(1, MAX_BACKLOG_MS // frame_ms))
        self._job_frames = max(1, MAX_JOB_MS // frame_ms)
        self._lag_frames = max(1, MAX_LAG_MS // frame_ms)
        self._frame_ms = frame_ms
        self._wake = asyncio.Event()
        self._warned = False
        self.dropped = 0  # frames lost to a full backlog
        self.passed = 0  # frames handed on uncleaned: a failed job, or the workers behind
        self.frames = 0  # frames cleaned

    def push(self, frame: bytes) -> None:
        if len(self._backlog) == self._backlog.maxlen:
            self.dropped += 1
            self._warn("the denoiser is stuck for %d ms: dropping caller audio", MAX_BACKLOG_MS)
        self._backlog.append(frame)
        self._wake.set()

    def restart(self, stream: DenoiserStream) -> None:
        """The caller's audio changed rate: a new stream, and frames at the old rate dropped."""
        self._stream = stream
        self._backlog.clear()

    async def run(self) -> None:
        """The call's denoise task: it owns the stream while a job is out."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._backlog:
                late = len(self._backlog) - self._lag_frames
                if late > 0:
                    self._warn(
                        "the denoiser is %d ms behind: passing audio on uncleaned",
                        len(self._backlog) * self._frame_ms,
                    )
                    self.passed += late
                    for _ in range(late):
                        self._sink(self._backlog.popleft())
                n = min(len(self._backlog), self._job_frames)
                frames = [self._backlog.popleft() for _ in range(n)]
                stream = self._stream
                try:
                    clean = await self._pool.run(stream.process, b"".join(frames))
                except Exception as exc:  # the caller is still heard, uncleaned
                    self.passed += n
                    self._warn("denoising failed, passing audio on uncleaned: %s", exc)
                    clean = b"".join(frames)
                if stream is not self._stream:
                    continue  # restarted at another rate while the job ran
                self.frames += n
                size = len(frames[0])
                for i in range(0, len(clean), size):
                    self._sink(clean[i : i + size])

    def _warn(self, message: str, arg: object) -> None:
        if not self._warned:
            self._warned = True
            log.warning("call %s: " + message, self._call_id, arg)


CLIP_TAIL_MS = 100  # silence after a whole clip, so the suppressor's delay does not cut its end


def denoise_clip(stream: DenoiserStream, pcm: bytes, sample_rate: int) -> bytes:
    """A whole utterance (the `audio` message) cleaned by a fresh stream, in a worker thread."""
    return stream.process(pcm + bytes(sample_rate * CLIP_TAIL_MS // 1000 * 2))
