"""docs/plugins.md runs as written: its example files are extracted verbatim, registered through
the plugin manager from the guide's own config.yaml, and each provider, action and slot type is
used once (the TTS also in a real call over /ws/voice)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import websockets
import yaml

from voicebot.config import load_config, validate_providers
from voicebot.plugins import make_plugin_manager
from voicebot.providers import AudioFormat, IntentSpec

from .support import Client, base_config, serve

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "docs" / "plugins.md").read_text()
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(lang: str) -> list[str]:
    return [body for kind, body in BLOCK.findall(GUIDE) if kind == lang]


@pytest.fixture
def guide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The guide's example modules and config.yaml, written to a directory on sys.path."""
    files = {}
    for body in blocks("python"):
        m = re.match(r"# (\w+\.py)\n", body)
        if m:
            files[m.group(1)] = body
    assert set(files) == {"shout_tts.py", "overlap_intent.py", "bookings.py"}, set(files)
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    configs = [b for b in blocks("yaml") if "plugins:" in b]
    assert len(configs) == 1, configs
    # the guide's lines, added to the default config.yaml as a user would
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    snippet = yaml.safe_load(configs[0])
    cfg["providers"].update(snippet["providers"])
    cfg["plugins"] = snippet["plugins"]
    cfg["flows"]["dir"] = str(ROOT / "flows")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


async def test_the_guide_plugins_register_and_work(guide: Path):
    cfg = load_config(guide / "config.yaml", env={})
    registry = make_plugin_manager(cfg.plugins).registry
    validate_providers(cfg, registry)

    tts_spec, intent_spec = cfg.chains["tts"][0], cfg.chains["intent"][0]
    tts = registry.provider("tts", tts_spec.use)(tts_spec.options)
    await tts.start()
    chunks = [c async for c in tts.synthesize("Hello there. Bye", AudioFormat(8000, "mulaw"))]
    assert [c.sample_rate for c in chunks] == [16000, 16000]
    assert [len(c.data) for c in chunks] == [2 * 16 * 40 * len("Hello there"), 2 * 16 * 40 * 3]

    intent = registry.provider("intent", intent_spec.use)(intent_spec.options)
    await intent.start()
    candidates = [
        IntentSpec("booking", examples=("book a table",), keywords=("reservation",)),
        IntentSpec("support", examples=("I need help",)),
    ]
    result = await intent.classify("Can I book a table for two?", candidates)
    assert (result.name, result.confidence) == ("booking", 1.0)
    assert (await intent.classify("what's the weather", candidates)).name is None

    booking = await registry.actions["bookings.create"](size=2, when="Friday 8pm", name="Ada")
    assert booking == {"reference": "AD02", "when": "Friday 8pm"}
    assert registry.slot_types["booking_ref"]("it's a b 1 2") == "AB12"
    assert registry.slot_types["booking_ref"]("no idea") is None


async def test_the_guide_tts_speaks_in_a_real_call(guide: Path, tmp_path: Path):
    cfg = base_config(dialogue={"mode": "echo", "greeting": "Hi."})
    cfg["plugins"] = [*cfg["plugins"], "shout_tts"]
    cfg["providers"]["tts"] = yaml.safe_load(blocks("yaml")[-1])["providers"]["tts"]
    async with serve(tmp_path, cfg) as server:
        c = Client(await websockets.connect(f"{server.url}/ws/voice?sample_rate=8000"))
        t, _ = await c.wait_for(lambda e: e.get("status") == "speaking")
        await c.wait_audio(2 * 8 * 40 * len("Hi."), after=t)  # resampled to the call's 8 kHz
        assert not [e for _, e in c.events if e.get("type") == "error"]
        await c.close()


def test_voicebot_check_accepts_the_guide_config(guide: Path):
    """Through the installed `voicebot` command, as the guide says (not `python -m`, which would
    put the current directory on sys.path by itself)."""
    env = {**os.environ, "PYTHONPATH": "."}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "voicebot"), "check", "config.yaml"],
        cwd=guide,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_packaging_example_depends_on_our_distribution():
    (toml,) = blocks("toml")
    project = tomllib.loads(toml)
    assert project["project"]["dependencies"] == ["voicebot-runtime"]
    assert project["project"]["entry-points"]["voicebot"] == {"shout": "shout_tts"}
