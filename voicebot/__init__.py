"""voicebot: a runtime for voice bots on phone calls and browser microphones."""

__version__ = "0.1.0"

from . import logsafe as _logsafe

_logsafe.install()  # every voicebot log record stays one line, whatever a caller sent
