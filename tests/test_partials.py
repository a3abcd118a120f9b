"""A fast streaming recogniser beside a whole-utterance one (`providers.partials`): live words
for the UI while the caller speaks, and interruptions confirmed by words, not by loudness.

Real pocketsphinx on espeak speech, over a real /ws/voice socket; the main STT is the batch stub,
so every non-final transcript here can only have come from the partials recogniser.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import websockets

from voicebot.config import ConfigError, load_config, validate_providers
from voicebot.plugins import make_plugin_manager

from .support import Client, base_config, serve, silence, tone
from .test_leaks import no_call_objects_alive, one_call
from .test_plugins_light import speech

GREETING = "Hello and thank you for calling the clinic, " * 3 + "how can I help?"


def partials_config(**pipeline: object) -> dict:
    cfg = base_config()
    cfg["providers"]["partials"] = {"use": "pocketsphinx", "decoders": 1}
    cfg["providers"]["tts"] = {"use": "stub", "ms_per_char": 40}
    cfg["dialogue"] = {"mode": "llm", "greeting": GREETING}
    cfg["pipeline"].update(pipeline)
    return cfg


async def test_partials_stream_while_the_caller_speaks(tmp_path) -> None:
    cfg = partials_config()
    cfg["dialogue"]["greeting"] = "Hi."
    async with serve(tmp_path, cfg) as server:
        c = Client(await websockets.connect(f"{server.url}/ws/voice"))
        at, _ = await c.wait_for(lambda e: e.get("type") == "response" and e["final"])
        await c.wait_for(lambda e: e.get("status") == "listening", after=at)
        await c.stream(speech("I want to speak to a person") + silence(400))
        at_final, final = await c.wait_for(lambda e: e.get("type") == "transcript" and e["final"])
        assert final["text"] == "what time is it"  # the answer still comes from the main STT
        partials = [(t, e) for t, e in c.events if e.get("type") == "transcript" and not e["final"]]
        assert partials, c.types()
        assert all(t <= at_final for t, _ in partials)
        assert any(w in partials[-1][1]["text"].split() for w in ("speak", "person", "want"))
        await c.ws.close()


async def test_with_needs_words_noise_does_not_interrupt_but_speech_does(tmp_path) -> None:
    cfg = partials_config(barge_in={"min_speech_ms": 60, "needs_words": True})
    async with serve(tmp_path, cfg) as server:
        c = Client(await websockets.connect(f"{server.url}/ws/voice"))
        at, _ = await c.wait_for(lambda e: e.get("status") == "speaking")
        await c.wait_audio(16000, after=at)  # the greeting is playing
        await c.stream(tone(500, freq=3000) + silence(300))  # loud to the VAD, no words in it
        speech_at = time.monotonic()
        talk = asyncio.ensure_future(c.stream(speech("I want to speak to a person")))
        try:
            at, _ = await c.wait_for(lambda e: e.get("status") == "interrupted")
        finally:
            await talk
        assert at >= speech_at, "the tone interrupted the bot"
        heard_at = [t for t, e in c.events if e.get("type") == "transcript" and t < at]
        assert heard_at and min(heard_at) >= speech_at  # words of the speech, none of the tone
        await c.ws.close()


def test_needs_words_without_a_streaming_recogniser_is_a_config_error(tmp_path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "pipeline:\n  barge_in:\n    needs_words: true\nproviders:\n  stt: {use: stub}\n"
    )
    cfg = load_config(path)
    with pytest.raises(ConfigError) as err:
        validate_providers(cfg, make_plugin_manager().registry)
    message = str(err.value)
    assert "config.yaml:3: pipeline.barge_in.needs_words" in message
    assert "partials: {use: pocketsphinx}" in message


async def test_hang_ups_return_every_decoder_and_leave_no_task(tmp_path) -> None:
    """Calls that end while the partials recogniser is mid-utterance release all it holds."""
    cfg = base_config()
    cfg["providers"]["partials"] = {"use": "pocketsphinx", "decoders": 1}
    async with serve(tmp_path, cfg) as server:
        for _ in range(5):
            await one_call(server)
        await asyncio.wait_for(server.runtime.no_calls.wait(), 5)
        await asyncio.wait_for(no_call_objects_alive(server.runtime), 5)
        health = server.runtime.providers["partials"].health()
        assert health["decoders"] == 1 and health["idle"] == 1, health
        assert [t for t in asyncio.all_tasks() if t.get_name().startswith("call-")] == []
