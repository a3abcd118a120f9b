"""The dialects, sans I/O: typed events in, frames out, no socket and no loop."""

from __future__ import annotations

import base64
import io
import json
import wave

import pytest

from voicebot.protocol import DIALECTS, EnvelopeDialect, Silent, VoicebotDialect, make_dialect
from voicebot.protocol import events as ev
from voicebot.protocol.commands import ProtocolError

NOW = "2026-01-02T03:04:05.000006"
CFG = ev.AudioConfig(16000, "pcm_s16le")


def envelope(session_id: str | None = "s-1") -> EnvelopeDialect:
    return EnvelopeDialect(
        call_id="c-1", session_id=session_id, max_text_chars=100, now=lambda: NOW
    )


def native() -> VoicebotDialect:
    return VoicebotDialect(call_id="c-1", session_id=None, max_text_chars=100)


def one(frames: list) -> dict:
    assert len(frames) == 1 and isinstance(frames[0], str), frames
    return json.loads(frames[0])


def test_events_are_frozen() -> None:
    status = ev.Status("listening", "c-1")
    with pytest.raises(AttributeError):
        status.state = "speaking"  # type: ignore[misc]


# ------------------------------------------------------------------------------- voicebot


@pytest.mark.parametrize(
    ("event", "wire"),
    [
        (
            ev.Connected("c-1", None, False, CFG),
            '{"type": "status", "status": "connected", "state": "connected", "session_id": null, '
            '"call_id": "c-1", "resumed": false, "audio_config": {"sample_rate": 16000, '
            '"encoding": "pcm_s16le", "frame_size_ms": 20}}',
        ),
        (
            ev.Status("ended", "c-1", reason="maximum call length reached"),
            '{"type": "status", "status": "ended", "state": "ended", "call_id": "c-1", '
            '"reason": "maximum call length reached"}',
        ),
        (
            ev.Status("interrupted", "c-1", said="Hello there.", heard="Hello"),
            '{"type": "status", "status": "interrupted", "state": "interrupted", '
            '"call_id": "c-1", "said": "Hello there.", "heard": "Hello"}',
        ),
        (
            ev.Transcript("hi", True, 0.9),
            '{"type": "transcript", "text": "hi", "final": true, "is_final": true, '
            '"confidence": 0.9}',
        ),
        (ev.ResponseDelta(" Two."), '{"type": "response_delta", "text": " Two."}'),
        (ev.Response("One. Two."), '{"type": "response", "text": "One. Two.", "final": true}'),
        (
            ev.Intent("book", 0.8, {"n": 2}),
            '{"type": "intent", "intent": "book", "confidence": 0.8, "parameters": {"n": 2}}',
        ),
        (
            ev.Error("text_too_long", "too long"),
            '{"type": "error", "code": "text_too_long", "status": 413, "message": "too long"}',
        ),
        (ev.Metrics(3, {"stt_ms": 12.5}), '{"type": "metrics", "turn": 3, "stt_ms": 12.5}'),
        (ev.Note("node", {"node": "ask"}), '{"type": "node", "node": "ask"}'),
        (ev.Transfer("+1", "cold"), '{"type": "transfer", "target": "+1", "mode": "cold"}'),
        (ev.Pong(), '{"type": "pong"}'),
        (ev.Heartbeat(), '{"type": "heartbeat"}'),
        (ev.AuthOk(12.0), '{"type": "auth", "status": "ok", "expires_at": 12.0}'),
    ],
)
def test_voicebot_dialect_renders_each_event(event: ev.Event, wire: str) -> None:
    assert native().render(event) == [wire]


def test_voicebot_dialect_sends_audio_as_binary_frames() -> None:
    assert native().audio(b"\x01\x02", CFG) == [b"\x01\x02"]


def test_parse_errors_carry_code_and_integer_status() -> None:
    d = native()
    with pytest.raises(ProtocolError) as caught:
        d.parse('{"type": "nope"}')
    assert caught.value.code == "unknown_type" and caught.value.status == 400
    assert one(d.error(caught.value)) == {
        "type": "error",
        "code": "unknown_type",
        "status": 400,
        "message": "unknown message type 'nope'",
    }


def test_silent_renders_nothing() -> None:
    for event in (ev.Status("listening", "c"), ev.Response("x"), ev.Error("stt_failed", "x")):
        assert Silent().render(event) == []


def test_make_dialect_knows_both() -> None:
    assert set(DIALECTS) == {"voicebot", "envelope"}
    d = make_dialect("envelope", call_id="c", session_id=None, max_text_chars=10)
    assert isinstance(d, EnvelopeDialect)


# ------------------------------------------------------------------------------- envelope


def test_envelope_connect_pong_and_errors() -> None:
    d = envelope()
    assert one(d.render(ev.Connected("c-1", "s-1", False, CFG))) == {
        "type": "system",
        "content": {
            "message": "Connected",
            "session_id": "s-1",
            "call_id": "c-1",
            "audio_config": {"sample_rate": 16000, "encoding": "pcm_s16le", "frame_size_ms": 20},
        },
        "session_id": "s-1",
        "timestamp": NOW,
        "metadata": None,
    }
    assert one(d.render(ev.Pong())) == {
        "type": "status",
        "content": {"status": "pong"},
        "session_id": "s-1",
        "timestamp": NOW,
        "metadata": None,
    }
    err = one(d.render(ev.Error("invalid_audio", "bad")))
    assert err["type"] == "error"
    assert err["content"] == {"error": "bad", "code": "invalid_audio", "status": 400}


def test_envelope_without_a_session_uses_the_call_id() -> None:
    assert one(envelope(None).render(ev.Pong()))["session_id"] == "c-1"


def _frames(n: int, rate: int = 16000) -> list[bytes]:
    return [bytes([i % 7, 0]) * (rate // 50) for i in range(n)]


def test_envelope_gathers_a_spoken_turn_into_one_audio_response() -> None:
    d = envelope()
    # the greeting: its text and audio, sent once it has played
    assert d.render(ev.ResponseDelta("Hi.")) == []
    assert d.render(ev.Response("Hi.")) == []
    assert d.render(ev.Status("speaking", "c-1")) == []
    for f in _frames(3):
        assert d.audio(f, CFG) == []
    greeting = one(d.render(ev.Status("listening", "c-1")))
    assert greeting["type"] == "audio_response"
    assert greeting["content"]["text"] == "Hi."
    # the caller's base64 utterance
    cmd = d.parse('{"type": "audio", "content": "AAAA"}')
    assert d.accepted(cmd) == []
    assert d.render(ev.Status("processing", "c-1")) == []
    assert d.render(ev.Transcript("go", False, None)) == []
    assert d.render(ev.Transcript("go forward", True, 0.75)) == []
    assert d.render(ev.Intent("move", 0.5, {})) == []
    assert d.render(ev.Response("You said: go forward.")) == []
    assert d.render(ev.Metrics(1, {"stt_ms": 1.0})) == []
    assert d.render(ev.Status("speaking", "c-1")) == []
    frames = _frames(5)
    for f in frames:
        d.audio(f, CFG)
    msg = one(d.render(ev.Status("listening", "c-1")))
    assert msg["type"] == "audio_response" and msg["session_id"] == "s-1"
    content = msg["content"]
    assert content["text"] == "You said: go forward."
    assert (content["intent"], content["confidence"]) == ("move", 0.5)
    assert (content["transcription"], content["stt_confidence"]) == ("go forward", 0.75)
    with wave.open(io.BytesIO(base64.b64decode(content["audio"]))) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert w.readframes(w.getnframes()) == b"".join(frames)
    # nothing more until the next turn
    assert d.render(ev.Status("listening", "c-1")) == []


def test_envelope_keeps_the_last_replys_audio_out_of_the_next_turn() -> None:
    """Frames of the greeting still in flight when the caller's utterance arrives (it cuts the
    greeting off) are not the answer's audio: a turn's audio starts at its own `speaking`."""
    d = envelope()
    d.render(ev.Response("Hi."))
    d.render(ev.Status("speaking", "c-1"))
    d.audio(b"\1\0" * 320, CFG)
    d.accepted(d.parse('{"type": "audio", "content": "AAAA"}'))
    d.audio(b"\2\0" * 320, CFG)  # the greeting's tail, before the interruption took effect
    d.render(ev.Status("processing", "c-1"))
    d.render(ev.Transcript("go", True, 0.9))
    d.render(ev.Response("You said: go."))
    d.render(ev.Status("speaking", "c-1"))
    d.audio(b"\3\0" * 320, CFG)
    msg = one(d.render(ev.Status("listening", "c-1")))
    with wave.open(io.BytesIO(base64.b64decode(msg["content"]["audio"]))) as w:
        assert w.readframes(w.getnframes()) == b"\3\0" * 320


def test_envelope_answers_typed_text_with_a_response_at_once() -> None:
    d = envelope()
    d.accepted(d.parse('{"type": "text", "content": "hello"}'))
    msg = one(d.render(ev.Response("You said: hello.")))
    assert msg["type"] == "response"
    assert msg["content"] == {"text": "You said: hello.", "intent": "unknown", "confidence": 0.0}
    assert d.audio(_frames(1)[0], CFG) == []  # its speech is not for this client
    assert d.render(ev.Status("listening", "c-1")) == []


def test_envelope_a_new_input_sends_the_unfinished_turn_first() -> None:
    d = envelope()
    d.render(ev.Response("Hi."))
    d.audio(_frames(1)[0], CFG)
    first = d.accepted(d.parse('{"type": "text", "content": "stop"}'))
    assert one(first)["content"]["text"] == "Hi."


def test_envelope_says_when_nothing_was_heard() -> None:
    d = envelope()
    d.render(ev.Response("Hi."))
    d.render(ev.Status("listening", "c-1"))
    d.accepted(d.parse('{"type": "audio", "content": "AAAA"}'))
    d.render(ev.Status("processing", "c-1"))
    msg = one(d.render(ev.Status("listening", "c-1")))
    assert msg["type"] == "response"
    assert msg["content"] == {"error": "Could not transcribe audio", "text": ""}


def test_envelope_reply_audio_is_pcm16_whatever_the_line_encoding() -> None:
    d = envelope()
    d.render(ev.Response("Hi."))
    d.render(ev.Status("speaking", "c-1"))
    d.audio(b"\xff" * 160, ev.AudioConfig(8000, "mulaw"))
    msg = json.loads(d.render(ev.Status("ended", "c-1", reason="bye"))[0])
    with wave.open(io.BytesIO(base64.b64decode(msg["content"]["audio"]))) as w:
        assert w.getframerate() == 8000 and w.getnframes() == 160
    d2 = envelope()
    d2.render(ev.Response("Hi."))
    out = d2.render(ev.Status("ended", "c-1", reason="bye"))
    assert [json.loads(f)["type"] for f in out] == ["response", "status"]
    assert json.loads(out[1])["content"] == {"status": "ended", "reason": "bye"}


def test_envelope_never_sends_binary() -> None:
    d = envelope()
    d.render(ev.Response("Hi."))
    out = [*d.audio(b"\0\0" * 320, CFG), *d.render(ev.Status("interrupted", "c-1"))]
    assert all(isinstance(f, str) for f in out) and len(out) == 1
