"""One call, split by job: `call` (lifecycle), and the pieces it composes.

Importers keep using `from voicebot.call import Call, CallIO`.
"""

from .call import Call, CallIO, Segment, TurnTimes

__all__ = ["Call", "CallIO", "Segment", "TurnTimes"]
