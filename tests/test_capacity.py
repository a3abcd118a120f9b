"""A full process refuses the call that does not fit, and the calls it has go on undisturbed.

The answer webhook refuses with `<Reject reason="busy">` (tests/test_twilio_webhooks.py), a browser
WebSocket with 1013 (tests/test_limits.py). Between the webhook and the stream there is a window:
two callers both answered while one place was free. The stream that arrives second must be closed
with 1013 (try again later) and the first call must keep its audio."""

from __future__ import annotations

from .support import serve
from .twilio_phone import Phone, mulaw_silence, phone_config


async def test_a_stream_over_capacity_is_closed_1013_and_the_call_in_progress_goes_on(tmp_path):
    cfg = phone_config(security={"limits": {"max_calls": 1}})
    async with serve(tmp_path, cfg) as server:
        first = await Phone.call(server, call_sid="CA0001")
        second = await Phone.call(server, call_sid="CA0002")  # answered: the place was free
        await first.connected()
        await first.start()
        await first.wait(lambda: first.media)  # the greeting: the first call is up
        await second.connected()
        await second.start()
        assert await second.wait_closed() == 1013
        assert len(server.runtime.calls) == 1
        heard = len(first.media)
        await first.talk(mulaw_silence(200))
        await first.wait(first.idle)
        assert len(first.media) >= heard and not first.closed.is_set()
        await first.stop()
        await first.wait_closed()
