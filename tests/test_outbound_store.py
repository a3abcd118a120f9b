"""The outbound call records' own rules, without a server: status callbacks applied once, the
in-process store's bound, and `voicebot check` on the shared store's `cluster` keys."""

from __future__ import annotations

from voicebot.telephony.outbound import OutboundCall, OutboundCalls, advance

from .test_cli import run_cli


def call(i: int) -> OutboundCall:
    return OutboundCall(f"CA{i}", "twilio", "+15551234567", "+15557654321")


def test_a_call_ends_once_and_late_callbacks_change_nothing():
    c = call(1)
    assert advance(c, "ringing", None, 100.0) == (True, False)
    assert advance(c, "ringing", None, 101.0) == (False, False)  # a retried callback
    assert advance(c, "in-progress", None, 102.0) == (True, False)
    assert advance(c, "completed", 12.0, 115.0) == (True, True)
    assert (c.status, c.outcome, c.duration_s, c.answered_at) == (
        "completed",
        "answered",
        12.0,
        102.0,
    )
    assert advance(c, "completed", 12.0, 116.0) == (False, False)
    assert advance(c, "busy", None, 117.0) == (False, False)
    assert advance(c, "bogus", None, 118.0) == (False, False)
    assert OutboundCall.from_record(c.record()) == c  # what Redis keeps reads back the same


async def test_the_in_process_store_is_bounded_oldest_finished_first():
    store = OutboundCalls(capacity=3)
    for i in range(3):
        await store.add(call(i))
    assert await store.progress("CA1", "busy") == (await store.get("CA1"), True)
    assert (await store.progress("CA1", "busy"))[1] is False  # ended once
    await store.add(call(3))
    assert await store.get("CA1") is None  # the finished one went first
    await store.add(call(4))
    assert await store.get("CA0") is None  # then the oldest
    assert [await store.get(f"CA{i}") is not None for i in (2, 3, 4)] == [True] * 3
    assert await store.progress("CAnope", "busy") == (None, False)


def test_check_validates_the_shared_store_keys(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "cluster:\n  redis_url: redis://127.0.0.1:6379/0\n  outbound_ttl_s: 5\n"
        "  max_outbound_calls: 10\n"
    )
    result = run_cli("check", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "cluster.outbound_ttl_s: 5.0 is out of range (60..2592000)" in result.stderr
    assert "cluster.max_outbound_calls: 10 is out of range" in result.stderr
