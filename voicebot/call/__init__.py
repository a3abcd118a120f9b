"""One call, split by job: `call` (lifecycle) composes a `conversation` (turns, barge-in,
no-input), which owns a `listener` (frames → VAD → turn-taking → STT), `transcription` (how a
spoken turn ends), a `speaker` (replies → TTS) with its `playback` (pacing, what was heard) and
`dtmf` collection; typed events go to the caller (`voicebot.protocol.events`) and `services`
names what a call needs from the process and its transport.

Importers keep using `from voicebot.call import Call, CallIO`.
"""

from .call import Call
from .playback import Segment
from .services import CallIO, CallServices
from .timing import TurnTimes

__all__ = ["Call", "CallIO", "CallServices", "Segment", "TurnTimes"]
