"""One call, split by job: `call` (lifecycle) composes a `conversation` (turns, barge-in,
no-input), which owns a `listener` (frames → VAD → turn-taking → STT), a `speaker` (replies → TTS →
paced playback, what was heard) and `dtmf` collection; `events` builds everything sent to the
caller and `services` names what a call needs from the process and its transport.

Importers keep using `from voicebot.call import Call, CallIO`.
"""

from .call import Call
from .events import TurnTimes
from .services import CallIO, CallServices
from .speaker import Segment

__all__ = ["Call", "CallIO", "CallServices", "Segment", "TurnTimes"]
