"""The inbound frame lag histogram behind `/telephony/stats`."""

from voicebot.telephony.lag import LagHistogram


def test_lag_histogram_percentiles():
    h = LagHistogram()
    assert h.summary() == {"p50": None, "p99": None, "max": 0.0, "n": 0}
    for ms in [0.2] * 98 + [12.3, 900.0]:
        h.add(ms)
    assert h.percentile(0.5) == 0.5  # the 0-0.5 ms bucket
    assert h.percentile(0.99) == 12.5  # the 12-12.5 ms bucket
    assert h.percentile(1.0) == 900.0  # overflow: the maximum
    assert h.summary()["n"] == 100
