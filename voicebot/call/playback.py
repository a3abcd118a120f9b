"""Paced playback of the bot's audio and what the caller heard of it.

Split from the speaker because it is a different job on a different clock: the speaker turns
dialogue text into TTS audio as fast as providers give it; playback owns the one bounded frame
queue and the task that drains it at real-time pace, so a barge-in can stop it within a frame.
What was heard is tracked per reply segment: by echoed marks where the transport has them
(Twilio), else by the playback clock; `flush` is what a barge-in drops.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .. import audio
from ..audio.types import AudioFormat
from .turns import TurnTaker

if TYPE_CHECKING:
    from ..config import PipelineConfig
    from .services import CallIO
    from .timing import TurnTimes

PLAYBACK_QUEUE_FRAMES = 250  # 5 s ahead at most; TTS waits (back-pressure) beyond that


@dataclass
class Segment:
    """A piece of a reply as played: its text, how long it lasts, and whether it was heard."""

    text: str
    barge_in: bool
    mark: str
    frames: int = 0
    end_at: float = 0.0  # loop time when its last frame finishes playing at the far end
    sent_all: bool = False
    heard: bool = False
    flushed: bool = False


class PlaybackHost(Protocol):
    """What playback tells its call."""

    #: the timings of the turn being answered
    turn: TurnTimes

    def heard(self, seg: Segment) -> None:
        """The caller heard all of `seg`."""

    async def status(self, state: str, **extra: Any) -> None: ...
    def emit_metrics(self) -> None: ...
    def playback_finished(self) -> None:
        """Everything sent has been played."""


class Playback:
    def __init__(
        self,
        cfg: PipelineConfig,
        io: CallIO,
        turns: TurnTaker,
        host: PlaybackHost,
        reply_format: AudioFormat,
        spawn: Callable[[Awaitable[Any], str], asyncio.Task[Any]],
    ) -> None:
        self._cfg = cfg
        self._io = io
        self._turns = turns
        self._host = host
        self._spawn = spawn
        self._loop = asyncio.get_running_loop()
        self.set_format(reply_format)
        self._queue: asyncio.Queue[tuple[bytes, Segment, AudioFormat] | Segment] = asyncio.Queue(
            PLAYBACK_QUEUE_FRAMES
        )
        self._segments: deque[Segment] = deque()
        self._playout_end = 0.0  # loop time when all audio sent so far will have been played
        self._speaking_until: asyncio.TimerHandle | None = None

    def set_format(self, reply_format: AudioFormat) -> None:
        """New audio is framed in `reply_format`; frames already queued in the old one are
        converted as they are sent."""
        self.reply_format = reply_format
        self._outbound = audio.OutboundAudio(reply_format.sample_rate, reply_format.encoding)
        self._rerates: dict[AudioFormat, audio.OutboundAudio] = {}

    def _rerate(self, fmt: AudioFormat, frame: bytes) -> bytes:
        """A frame queued in an earlier format, in the current one (a streaming resampler per
        old format, so a re-rated greeting has no clicks between frames)."""
        conv = self._rerates.get(fmt)
        if conv is None:
            conv = self._rerates[fmt] = audio.OutboundAudio(
                self.reply_format.sample_rate, self.reply_format.encoding
            )
        return b"".join(conv.push(frame, fmt.sample_rate, fmt.encoding))

    def start(self) -> None:
        self._spawn(self._playback_loop(), "playback")

    def close(self) -> None:
        if self._speaking_until is not None:
            self._speaking_until.cancel()

    @property
    def unplayed(self) -> bool:
        """Audio sent or queued that the far end has not finished playing."""
        return bool(self._segments) or not self._queue.empty()

    @property
    def has_segments(self) -> bool:
        return bool(self._segments)

    # ------------------------------------------------------------------------------ queueing

    async def push(self, seg: Segment, data: bytes, sample_rate: int, encoding: str) -> None:
        """TTS audio for `seg`, framed and queued; waits while the queue is full."""
        fmt = self.reply_format
        out = self._outbound.push(data, sample_rate, encoding)
        for frame in out:
            await self._queue.put((frame, seg, fmt))

    async def end_segment(self, seg: Segment) -> None:
        """`seg` is complete: its last partial frame and its end marker."""
        fmt = self.reply_format
        for frame in self._outbound.end_segment():
            await self._queue.put((frame, seg, fmt))
        await self._queue.put(seg)

    # ----------------------------------------------------------------------------- playback

    async def _playback_loop(self) -> None:
        """Send frames at real-time pace, `playback_lead_ms` ahead of the far end's playout.

        On a phone media stream whose carrier takes more than a frame a message, frames already
        queued for the same segment go out together, up to `phone_message_ms` a message: one
        write and one timer wake-up per 100 ms instead of per 20 ms, the far end's buffer holding
        at most that much more. What was heard comes from the echoed marks, and `clear` drops
        what was sent ahead; a carrier without marks (FreeSWITCH) is judged by this clock, and
        a barge-in just stops the sending. The lead is the line's own when it has one."""
        frame_s = self._outbound.frame_ms / 1000
        lead = (getattr(self._io, "playback_lead_ms", 0) or self._cfg.playback_lead_ms) / 1000
        # a carrier that takes more than a frame a message (the browser and TCP doors do not)
        most = min(self._cfg.phone_message_ms, getattr(self._io, "max_message_ms", 0))
        batch = max(1, most // self._outbound.frame_ms)
        carry: tuple[bytes, Segment, AudioFormat] | Segment | None = None
        while True:
            item = carry if carry is not None else await self._queue.get()
            carry = None
            now = self._loop.time()
            if isinstance(item, Segment):
                item.sent_all = True
                item.end_at = max(self._playout_end, now)
                # an echo to wait for, or (browser) the end of one playable file
                await self._io.send_mark(item.mark)
                if not self._io.supports_marks:
                    self._arm_speaking_until(item.end_at)
                continue
            frame, seg, fmt = item
            frames = [frame]
            while len(frames) < batch and not self._queue.empty():
                more = self._queue.get_nowait()
                if isinstance(more, Segment) or more[1] is not seg or more[2] != fmt:
                    carry = more  # a segment's end, the next one, or another format: not now
                    break
                frames.append(more[0])
            if not self._turns.bot_speaking:
                self._bot_started(seg)
                await self._host.status("speaking")  # before the audio it announces, not after
                if seg.flushed:
                    carry = None
                    continue  # a barge-in cleared it while the status went out
            elif self._segments and self._segments[-1] is not seg:
                self._segments.append(seg)
                self._turns.next_piece(seg.barge_in)
            self._playout_end = max(self._playout_end, now)
            wait = self._playout_end - lead - now
            if wait > 0:
                await asyncio.sleep(wait)
                if seg.flushed:
                    carry = None
                    continue  # a barge-in cleared it while we waited
            turn = self._host.turn
            if turn.first_audio is None and turn.first_tts is not None:
                turn.first_audio = self._loop.time()
                self._host.emit_metrics()
            out = frames[0] if len(frames) == 1 else b"".join(frames)
            if fmt != self.reply_format:  # queued before a `config` changed the rate
                out = self._rerate(fmt, out)
                if not out:
                    continue  # held in the resampler's delay: out with the next one
            await self._io.send_audio(out)
            seg.frames += len(frames)
            self._playout_end += frame_s * len(frames)

    def _bot_started(self, seg: Segment) -> None:
        if self._speaking_until is not None:
            self._speaking_until.cancel()
            self._speaking_until = None
        if not self._segments or self._segments[-1] is not seg:
            self._segments.append(seg)
        self._turns.set_bot_speaking(True, seg.barge_in)

    def _arm_speaking_until(self, end_at: float) -> None:
        if self._speaking_until is not None:
            self._speaking_until.cancel()
        self._speaking_until = self._loop.call_at(end_at, self._played_by_clock)

    def _played_by_clock(self) -> None:
        self._speaking_until = None
        now = self._loop.time()
        while self._segments and self._segments[0].sent_all and self._segments[0].end_at <= now:
            self._segment_heard(self._segments.popleft())
        if not self._segments and self._queue.empty():
            self._host.playback_finished()

    def mark_played(self, name: str) -> None:
        """An echoed mark: everything sent before it has been played (or cleared)."""
        if not any(seg.mark == name for seg in self._segments):
            return  # not ours, or from a reply a barge-in already flushed
        while self._segments:
            seg = self._segments.popleft()
            self._segment_heard(seg)
            if seg.mark == name:
                break
        if not self._segments and self._queue.empty():
            self._host.playback_finished()

    def _segment_heard(self, seg: Segment) -> None:
        seg.heard = True
        self._host.heard(seg)

    # ------------------------------------------------------------------------------ barge-in

    def flush(self) -> tuple[tuple[str, str] | None, list[Segment]]:
        """Drop everything queued and sent: the speech cut off and how much of it the caller
        heard (None when none was), and the segments dropped (what a false stop says again)."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self._outbound.clear()
        self._rerates.clear()
        now = self._loop.time()
        said, heard = [], []
        for seg in self._segments:
            said.append(seg.text)
            if seg.heard or (not self._io.supports_marks and seg.sent_all and seg.end_at <= now):
                heard.append(seg.text)
            elif seg.frames and seg.end_at > now and seg.sent_all:
                total = seg.frames * self._outbound.frame_ms / 1000
                played = max(0.0, total - (seg.end_at - now))
                words = seg.text.split()
                heard.append(" ".join(words[: int(len(words) * played / total)]))
        dropped = list(self._segments)
        for seg in self._segments:
            seg.flushed = True
        self._segments.clear()
        self._playout_end = 0.0  # the far end dropped its buffer too
        if self._speaking_until is not None:
            self._speaking_until.cancel()
            self._speaking_until = None
        self._turns.set_bot_speaking(False)
        if said:
            return (" ".join(said), " ".join(h for h in heard if h)), dropped
        return None, dropped
