"""The bot's side of a call: dialogue outputs → sentences → TTS → `Playback`.

Each reply runs as one task that streams dialogue text sentence by sentence into TTS, so the
caller hears the first sentence while the dialogue is still producing the rest. Cancellation is
the normal way replies end. Pacing the audio out and knowing what was heard is `playback`'s job.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..audio.types import AudioFormat
from ..dialogue import Hangup, IntentEvent, Listen, Note, Say, Transfer
from ..dialogue.sentences import SentenceSplitter, spaced
from ..protocol import events
from ..providers import ProviderError
from ..providers.deadlines import bounded
from .playback import Playback, PlaybackHost, Segment
from .services import CallIO, CallServices
from .turns import TurnTaker

log = logging.getLogger("voicebot.call")

__all__ = ["Segment", "Speaker", "SpeakerHost"]


class SpeakerHost(PlaybackHost):
    """What the speaker (and its playback) tells its call."""

    def listen(self, how: Listen) -> None:
        """How to take the caller's next input (no-input timeout, DTMF rules)."""

    def hangup_after_playback(self, reason: str) -> None: ...
    def remember(self, role: str, text: str) -> None: ...
    async def error(self, code: str, message: str) -> None: ...
    def reply_finished(self) -> None:
        """The reply task produced everything (its audio may still be playing)."""


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
        self.playback = Playback(self._cfg, io, turns, host, _reply_format(fmt), spawn)
        self._mark_ids = itertools.count(1)
        self.reply: asyncio.Task[Any] | None = None
        self._reply_parts: list[str] = []
        #: What the last flush cut off: the sentence being played and the rest of the reply.
        self.unsaid: str | None = None

    def set_format(self, fmt: AudioFormat) -> None:
        """New replies are made in `fmt`; audio already queued in the old one (a greeting
        playing when the client's `config` arrives) is converted as it is sent."""
        self.playback.set_format(_reply_format(fmt))

    def start(self) -> None:
        self.playback.start()

    def close(self) -> None:
        self.playback.close()

    def mark_played(self, name: str) -> None:
        """An echoed mark: everything sent before it has been played (or cleared)."""
        self.playback.mark_played(name)

    @property
    def replying(self) -> bool:
        return self.reply is not None and not self.reply.done()

    @property
    def unplayed(self) -> bool:
        """Audio sent or queued that the far end has not finished playing."""
        return self.playback.unplayed

    @property
    def has_segments(self) -> bool:
        return self.playback.has_segments

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
        self._reply_parts = reply  # read by `interrupt`: what a false stop has to say again
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
        preferred = self.playback.reply_format
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
                        await self.playback.push(seg, chunk.data, chunk.sample_rate, chunk.encoding)
            except ProviderError as exc:
                log.warning("call %s: TTS failed: %s", self._call_id, exc)
                await self._host.error("tts_failed", f"speech synthesis failed: {exc}")
                failed = True
            await self.playback.end_segment(seg)

    # ------------------------------------------------------------------------------ barge-in

    def interrupt(self) -> tuple[str, str] | None:
        """Stop the current reply (if any) and everything queued for playback; the speech cut
        off and how much of it the caller heard (None when none was)."""
        if self.replying:
            assert self.reply is not None
            self.reply.cancel()
        heard_any = self._turns.bot_speaking or self.playback.has_segments
        cut, dropped = self.playback.flush()
        self.unsaid = _unsaid_text("".join(self._reply_parts).strip(), dropped)
        if heard_any:
            self._spawn(self._io.clear(), "clear")
        return cut


def _unsaid_text(whole: str, segments: list[Segment]) -> str | None:
    """The first sentence not wholly heard and everything after it in the reply."""
    first = next((seg.text.strip() for seg in segments if not seg.heard), None)
    if not first:
        return None
    at = whole.find(first)
    return whole[at:] if at >= 0 else " ".join(seg.text for seg in segments if not seg.heard)


def _reply_format(fmt: AudioFormat) -> AudioFormat:
    """Replies go out in the caller's format, except to WebM/Opus callers, who get PCM16."""
    return AudioFormat(fmt.sample_rate, "pcm_s16le" if fmt.encoding == "webm" else fmt.encoding)
