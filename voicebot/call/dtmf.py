"""Key presses gathered into one input, by the rules of the flow's current `Listen`: until its
terminator key, its maximum number of digits, or a pause of `dtmf_timeout_ms` after a key."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..dialogue import Listen


class DtmfCollector:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        rules: Callable[[], Listen],
        on_digits: Callable[[str], None],
    ) -> None:
        self._loop = loop
        self._rules = rules  # the current ones, asked at each key and when the input ends
        self._on_digits = on_digits
        self._digits = ""
        self._handle: asyncio.TimerHandle | None = None

    def press(self, digit: str) -> None:
        rules = self._rules()
        self._digits += digit
        if self._handle is not None:
            self._handle.cancel()
        done = (rules.dtmf_terminator and digit == rules.dtmf_terminator) or len(
            self._digits
        ) >= max(1, rules.dtmf_max_digits)
        if done:
            self._flush()
        else:
            self._handle = self._loop.call_later(rules.dtmf_timeout_ms / 1000, self._flush)

    def _flush(self) -> None:
        digits, self._digits, self._handle = self._digits, "", None
        term = self._rules().dtmf_terminator
        if term and digits.endswith(term):
            digits = digits[: -len(term)]
        self._on_digits(digits)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
