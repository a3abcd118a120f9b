"""voicebot: a runtime for voice bots on phone calls and browser microphones."""

__version__ = "0.1.0"
