"""Run the suite on another day: `python -m pytest -p tests.fake_date --fake-date 2030-07-04T12:00`.

Tests must not depend on the date, the time zone or the locale (CI runs on other days than the
one a test was written on). This plugin moves the wall clock (`time.time`, `datetime.now`,
`date.today`) of the test process to the given moment, ticking from there, so a whole run proves
it; combine it with `TZ=...` for the time zone. Monotonic clocks, file mtimes and subprocesses keep
the real time, which is why it is a plugin on the wall clock and not libfaketime (that also fakes
sleeps and breaks them).
"""

from __future__ import annotations

from datetime import datetime

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fake-date", help="ISO 8601 moment the wall clock starts at")


def pytest_configure(config: pytest.Config) -> None:
    when = config.getoption("--fake-date")
    if not when:
        return
    import time_machine  # only needed for this check

    traveller = time_machine.travel(datetime.fromisoformat(when), tick=True)
    traveller.start()
    config.add_cleanup(traveller.stop)
