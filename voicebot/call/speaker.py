"""The bot's side of a call: dialogue outputs → sentences → TTS → paced playback.

Each reply runs as one task that streams dialogue text sentence by sentence into TTS; one playback
task paces audio to the transport in real time with a small lead, so a barge-in can stop it within
a frame. Cancellation is the normal way replies end.

What the caller heard is tracked per reply segment: by echoed marks where the transport has them
(Twilio), else by the playback clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .. import audio
from ..audio.types import AudioFormat
from ..dialogue import Hangup, IntentEvent, Listen, Note, Say, Transfer
from ..dialogue.sentences import SentenceSplitter, spaced
from ..protocol import events
from ..providers import ProviderError
from ..providers.deadlines import bounded
from .services import CallIO, CallServices
from .turns import TurnTaker

if TYPE_CHECKING:
    from .timing import TurnTimes

log = logging.getLogger("voicebot.call")

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


class SpeakerHost(Protocol):
    """What the speaker tells its call."""

    #: the timings of the turn being answered
    turn: TurnTimes

    def listen(self, how: Listen) -> None:
        """How to take the caller's next input (no-input timeout, DTMF rules)."""

    def hangup_after_playback(self, reason: str) -> None: ...
    def remember(self, role: str, text: str) -> None: ...
    def heard(self, seg: Segment) -> None:
        """The caller heard all of `seg`."""

    async def status(self, state: str, **extra: Any) -> None: ...
    async def error(self, code: str, message: str) -> None: ...
    def emit_metrics(self) -> None: ...
    def reply_finished(self) -> None:
        """The reply task produced everything (its audio may still be playing)."""

    def playback_finished(self) -> None:
        """Everything sent has been played."""


class Speaker:
    def __init__(
        self,
        services: CallServices,
        io: CallIO,
        turns: TurnTaker,
        host: SpeakerHost,
        fmt: AudioFormat,
        spawn: Callable[[Awaitable[Any], str], asyncio.Task[Any]],
        call_id: str,
    ) -> None:
        self._services = services
        self._cfg = services.config.pipeline
        self._io = io
        self._turns = turns
        self._host = host
        self._spawn = spawn
        self._call_id = call_id
        self._loop = asyncio.get_running_loop()
        self.set_format(fmt)
        self._playback: asyncio.Queue[tuple[bytes, Segment, AudioFormat] | Segment] = asyncio.Queue(
            PLAYBACK_QUEUE_FRAMES
        )
        self._segments: deque[Segment] = deque()
        self._playout_end = 0.0  # loop time when all audio sent so far will have been played
        self._mark_ids = itertools.count(1)
        self._speaking_until: asyncio.TimerHandle | None = None
        self.reply: asyncio.Task[Any] | None = None
        self._reply_parts: list[str] = []
        #: What the last flush cut off: the sentence being played and the rest of the reply.
        self.unsaid: str | None = None

    def set_format(self, fmt: AudioFormat) -> None:
        """New replies are made in `fmt`; audio already queued in the old one (a greeting
        playing when the client's `config` arrives) is converted as it is sent."""
        self._format = fmt
        self._reply_format = AudioFormat(fmt.sample_rate, _reply_encoding(fmt))
        self._outbound = audio.OutboundAudio(fmt.sample_rate, _reply_encoding(fmt))
        self._rerates: dict[AudioFormat, audio.OutboundAudio] = {}

    def _rerate(self, fmt: AudioFormat, frame: bytes) -> bytes:
        """A frame queued in an earlier format, in the current one (a streaming resampler per
        old format, so a re-rated greeting has no clicks between frames)."""
        conv = self._rerates.get(fmt)
        if conv is None:
            conv = self._rerates[fmt] = audio.OutboundAudio(
                self._reply_format.sample_rate, self._reply_format.encoding
            )
        return b"".join(conv.push(frame, fmt.sample_rate, fmt.encoding))

    def start(self) -> None:
        self._spawn(self._playback_loop(), "playback")

    def close(self) -> None:
        if self._speaking_until is not None:
            self._speaking_until.cancel()

    @property
    def replying(self) -> bool:
        return self.reply is not None and not self.reply.done()

    @property
    def unplayed(self) -> bool:
        """Audio sent or queued that the far end has not finished playing."""
        return bool(self._segments) or not self._playback.empty()

    @property
    def has_segments(self) -> bool:
        return bool(self._segments)

    # ------------------------------------------------------------------------------ replies

    def speak(self, outputs: AsyncIterator[Any]) -> None:
        """Answer with one dialogue step, replacing any reply still running."""
        self.start_reply(self._drive(outputs))

    def start_reply(self, coro: Awaitable[Any]) -> None:
        if self.replying:
            assert self.reply is not None
            self.reply.cancel()
        self.reply = self._spawn(coro, "reply")

    def say(self, text: str, cache_key: str | None, barge_in: bool = True) -> None:
        async def one() -> AsyncIterator[Any]:
            yield Say(text, barge_in=barge_in, cache_key=cache_key)

        self.speak(one())

    def apologise(self) -> None:
        self.say(self._cfg.apology, "apology")

    async def _drive(self, outputs: AsyncIterator[Any]) -> None:
        """Run one dialogue step: stream its text into TTS while it is still producing."""
        sentences: asyncio.Queue[tuple[str, bool, str | None] | None] = asyncio.Queue(32)
        tts = self._spawn(self._synthesize(sentences), "tts")
        splitter = SentenceSplitter()
        reply: list[str] = []
        self._reply_parts = reply  # read by `_flush`: what a false stop has to say again
        barge_in, cache_key, last_delta = True, None, False
        try:
            try:
                async for out in outputs:
                    if isinstance(out, Say):
                        if self._host.turn.first_text is None:
                            self._host.turn.first_text = self._loop.time()
                        piece_text = spaced(
                            reply[-1] if reply else "", out.text, out.delta, last_delta
                        )
                        last_delta = out.delta
                        reply.append(piece_text)
                        barge_in, cache_key = out.barge_in, out.cache_key
                        await self._io.send_event(events.ResponseDelta(piece_text))
                        for piece in splitter.push(piece_text):
                            await sentences.put((piece, barge_in, cache_key))
                    elif isinstance(out, Listen):
                        self._host.listen(out)
                    elif isinstance(out, IntentEvent):
                        await self._io.send_event(
                            events.Intent(out.intent, out.confidence, out.parameters)
                        )
                    elif isinstance(out, Hangup):
                        self._host.hangup_after_playback(out.reason)
                    elif isinstance(out, Transfer) and not await self._transfer(out):
                        # the flow has ended: say so and hang up rather than go silent
                        for piece in splitter.flush():
                            await sentences.put((piece, barge_in, cache_key))
                        failed = self._cfg.transfer_failed
                        reply.append(spaced(reply[-1] if reply else "", failed, False, False))
                        await sentences.put((failed, True, "transfer_failed"))
                        self._host.hangup_after_playback(f"transfer to {out.target} failed")
                    elif isinstance(out, Note):
                        await self._io.send_event(events.Note(out.kind, out.data))
            except ProviderError as exc:
                log.warning("call %s: dialogue provider failed: %s", self._call_id, exc)
                await self._host.error("provider_failed", str(exc))
                splitter.flush()
                reply.append(spaced(reply[-1] if reply else "", self._cfg.apology, False, False))
                await sentences.put((self._cfg.apology, True, "apology"))
            for piece in splitter.flush():
                await sentences.put((piece, barge_in, cache_key))
            text = "".join(reply).strip()
            if text:
                await self._io.send_event(events.Response(text))
                self._host.remember("assistant", text)
            await sentences.put(None)
            await tts
        finally:
            if not tts.done():
                tts.cancel()
        self._host.reply_finished()

    async def _transfer(self, out: Transfer) -> bool:
        """Whether the transport took the call elsewhere. A browser never can: it gets the
        `transfer` event to act on itself (open a chat with a person, dial out...)."""
        await self._io.send_event(events.Transfer(out.target, out.mode))
        if await self._io.transfer(out.target):
            self._host.hangup_after_playback(f"transferred to {out.target}")
            return True
        return False

    async def _synthesize(
        self, sentences: asyncio.Queue[tuple[str, bool, str | None] | None]
    ) -> None:
        tts = self._services.providers["tts"]
        deadline = self._services.deadlines["tts"]
        preferred = AudioFormat(self._format.sample_rate, _reply_encoding(self._format))
        failed = False
        while (item := await sentences.get()) is not None:
            if failed:
                continue  # one failure per reply: not a deadline's wait for every sentence
            text, barge_in, cache_key = item
            seg = Segment(text, barge_in, mark=f"seg-{next(self._mark_ids)}")
            try:
                if cache_key is not None and hasattr(tts, "synthesize_cached"):
                    chunks = tts.synthesize_cached(text, preferred, cache_key=cache_key)
                else:
                    chunks = tts.synthesize(text, preferred)
                chunks = bounded(chunks, deadline, provider=tts.name, what="audio")
                async with contextlib.aclosing(chunks):  # barge-in closes the upstream now
                    async for chunk in chunks:
                        if self._host.turn.first_tts is None:
                            self._host.turn.first_tts = self._loop.time()
                        fmt = self._reply_format
                        out = self._outbound.push(chunk.data, chunk.sample_rate, chunk.encoding)
                        for frame in out:
                            await self._playback.put((frame, seg, fmt))
            except ProviderError as exc:
                log.warning("call %s: TTS failed: %s", self._call_id, exc)
                await self._host.error("tts_failed", f"speech synthesis failed: {exc}")
                failed = True
            fmt = self._reply_format
            for frame in self._outbound.end_segment():
                await self._playback.put((frame, seg, fmt))
            await self._playback.put(seg)  # end-of-segment marker

    # ----------------------------------------------------------------------------- playback

    async def _playback_loop(self) -> None:
        """Send frames at real-time pace, `playback_lead_ms` ahead of the far end's playout.

        On a line with marks (a phone media stream), frames already queued for the same segment
        go out together, up to `phone_message_ms` a message: one write and one timer wake-up per
        100 ms instead of per 20 ms, the far end's buffer holding at most that much more. What
        was heard still comes from the echoed marks, and `clear` drops what was sent ahead."""
        frame_s = self._outbound.frame_ms / 1000
        lead = self._cfg.playback_lead_ms / 1000
        batch = 1
        if self._io.supports_marks:  # and a carrier that takes more than a frame a message
            most = min(self._cfg.phone_message_ms, getattr(self._io, "max_message_ms", 0))
            batch = max(1, most // self._outbound.frame_ms)
        carry: tuple[bytes, Segment, AudioFormat] | Segment | None = None
        while True:
            item = carry if carry is not None else await self._playback.get()
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
            while len(frames) < batch and not self._playback.empty():
                more = self._playback.get_nowait()
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
            if fmt != self._reply_format:  # queued before a `config` changed the rate
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
        if not self._segments and self._playback.empty():
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
        if not self._segments and self._playback.empty():
            self._host.playback_finished()

    def _segment_heard(self, seg: Segment) -> None:
        seg.heard = True
        self._host.heard(seg)

    # ------------------------------------------------------------------------------ barge-in

    def interrupt(self) -> tuple[str, str] | None:
        """Stop the current reply (if any) and everything queued for playback; the speech cut
        off and how much of it the caller heard (None when none was)."""
        if self.replying:
            assert self.reply is not None
            self.reply.cancel()
        heard_any = self._turns.bot_speaking or bool(self._segments)
        cut = self._flush()
        if heard_any:
            self._spawn(self._io.clear(), "clear")
        return cut

    def _unsaid(self) -> str | None:
        return _unsaid_text("".join(self._reply_parts).strip(), list(self._segments))

    def _flush(self) -> tuple[str, str] | None:
        while not self._playback.empty():
            self._playback.get_nowait()
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
        self.unsaid = self._unsaid()
        for seg in self._segments:
            seg.flushed = True
        self._segments.clear()
        self._playout_end = 0.0  # the far end dropped its buffer too
        if self._speaking_until is not None:
            self._speaking_until.cancel()
            self._speaking_until = None
        self._turns.set_bot_speaking(False)
        if said:
            return " ".join(said), " ".join(h for h in heard if h)
        return None


def _unsaid_text(whole: str, segments: list[Segment]) -> str | None:
    """The first sentence not wholly heard and everything after it in the reply."""
    first = next((seg.text.strip() for seg in segments if not seg.heard), None)
    if not first:
        return None
    at = whole.find(first)
    return whole[at:] if at >= 0 else " ".join(seg.text for seg in segments if not seg.heard)


def _reply_encoding(fmt: AudioFormat) -> str:
    """Replies go out in the caller's encoding, except WebM/Opus callers, who get PCM16."""
    return "pcm_s16le" if fmt.encoding == "webm" else fmt.encoding
