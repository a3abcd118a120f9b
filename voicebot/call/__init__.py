"""One call, split by job: `call` (lifecycle) and the pieces it composes: `listener` (frames →
VAD → turn-taking → STT), `speaker` (replies → TTS → paced playback, what was heard),
`conversation` (turns, barge-in, no-input), `dtmf`, `events` (everything sent to the caller) and
`services` (what a call needs from the process and its transport).

Importers keep using `from voicebot.call import Call, CallIO`.
"""

from .call import Call
from .events import TurnTimes
from .services import CallIO, CallServices
from .speaker import Segment

__all__ = ["Call", "CallIO", "CallServices", "Segment", "TurnTimes"]
