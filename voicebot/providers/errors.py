"""The errors a provider raises, apart from the provider interfaces.

`workers` raises `Overloaded` (a `ProviderError`) and `providers` hands out a `WorkerPool`: keeping
the error types here lets both import them without importing each other. Plugin authors keep
importing them from `voicebot.providers`, which re-exports them.
"""

from __future__ import annotations


class ProviderError(Exception):
    """A provider failed in a way the call can survive (fallback, retry or a spoken apology).

    `retryable` tells a fallback chain whether the same request may be sent again.
    """

    def __init__(self, message: str, *, provider: str = "", retryable: bool = False) -> None:
        super().__init__(message)
        self.provider = provider
        self.retryable = retryable


class ModelMissingError(ProviderError):
    """A local model is not installed; the message names the package that ships it."""
