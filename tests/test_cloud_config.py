"""The cloud providers as users configure them: YAML through the config loader, entry points,
option validation with file:line errors, and fallback lists built into chains."""

from __future__ import annotations

import pytest

from voicebot.config import load_config
from voicebot.config.options import ConfigError
from voicebot.providers.fallback import FallbackSTT, FallbackTTS
from voicebot.runtime import Runtime
from voicebot_plugins.deepgram import DeepgramSTT
from voicebot_plugins.openai_providers import OpenAILLM

CONFIG = """\
plugins: [tests.testvad]
providers:
  vad: {use: testvad}
  stt:
    - {use: deepgram, api_key: "${DEEPGRAM_API_KEY:-}", endpointing_ms: 300, keyterms: [Zürich]}
    - {use: openai, model: whisper-large-v3-turbo, base_url: "http://127.0.0.1:9/openai/v1"}
  tts:
    - {use: elevenlabs, api_key: "${ELEVENLABS_API_KEY:-}", stability: 0.5, speed: 1.1}
    - {use: deepgram, api_key: "${DEEPGRAM_API_KEY:-}", model: aura-2-andromeda-en}
  llm: {use: openai, model: llama3.2, base_url: "http://127.0.0.1:11434/v1", temperature: 0.3}
dialogue: {mode: llm}
pipeline: {fallback: {first_result_ms: 1500, cooldown_s: 10}}
"""

ENV = {"DEEPGRAM_API_KEY": "dg-key", "ELEVENLABS_API_KEY": "xi-key"}


async def test_yaml_chains_become_started_fallback_providers(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    runtime = Runtime(load_config(path, env=ENV))
    await runtime.start()
    try:
        stt, cached, llm = (runtime.providers[r] for r in ("stt", "tts", "llm"))
        tts = cached.inner  # the per-process prompt cache wraps whatever TTS is configured
        assert isinstance(stt, FallbackSTT) and isinstance(tts, FallbackTTS)
        assert tts.budget == 1.5 and tts._health._cooldown == 10  # pipeline.fallback reaches it
        assert isinstance(stt.providers[0], DeepgramSTT) and stt.endpointing is True
        assert stt.providers[0].options.api_key == "dg-key"
        assert stt.providers[0].options.keyterms == ["Zürich"]
        assert [p.name for p in tts.providers] == ["elevenlabs", "deepgram"]
        assert isinstance(llm, OpenAILLM) and llm.options.temperature == 0.3
        health = runtime.health()["providers"]
        assert health["tts"]["status"] == "ok"
        assert health["llm"] == {
            "name": "openai",
            "status": "ok",
            "base_url": "http://127.0.0.1:11434/v1",
        }
        assert [m["base_url"] for m in health["tts"]["members"]] == [
            "https://api.elevenlabs.io",
            "https://api.deepgram.com",
        ]
    finally:
        await runtime.stop()


def test_option_mistakes_are_reported_with_file_and_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "providers:\n"
        "  stt: {use: deepgram, endpointing: 300}\n"
        "  tts: {use: elevenlabs, stability: 3}\n"
    )
    with pytest.raises(ConfigError) as err:
        Runtime(load_config(path, env={}))
    text = str(err.value)
    assert (
        "config.yaml:2: providers.stt.endpointing: unknown key (did you mean 'endpointing_ms'?)"
        in text
    )
    assert "config.yaml:3: providers.tts.stability: 3.0 is out of range (0..1)" in text
