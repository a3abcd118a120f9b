"""`voicebot bench` as an operator runs it: a separate process, real sockets, JSON out."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from voicebot.bench.load import voiced

from .support import base_config, serve

ROOT = Path(__file__).parent.parent


async def bench(*args: str, timeout: float = 90) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voicebot.cli",
        "bench",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


def phone_config() -> dict:
    return base_config(telephony={"twilio": {"allow_unsigned": True}})


@pytest.mark.parametrize("protocol", ["browser", "twilio"])
async def test_bench_against_a_running_server_answers_every_turn(tmp_path, protocol):
    out_json = tmp_path / "out.json"
    async with serve(tmp_path, phone_config()) as server:
        code, out, err = await bench(
            "--url",
            server.http,
            "--server-pid",
            str(os.getpid()),
            "--protocol",
            protocol,
            "--calls",
            "3",
            "--turns",
            "1",
            "--ramp",
            "0.5",
            "--speech-ms",
            "600",
            "--gap-ms",
            "300",
            "--json",
            str(out_json),
        )
    assert code == 0, err
    figures = json.loads(out_json.read_text())
    assert figures["protocol"] == protocol and figures["calls"] == 3
    assert figures["turns_sent"] == figures["turns_answered"] == 3
    assert figures["failed_calls"] == 0
    v2v = figures["voice_to_voice_ms"]
    assert set(v2v) == {"p50", "p95", "p99"}
    assert 0 < v2v["p50"] <= v2v["p95"] <= v2v["p99"] < 5000
    assert figures["server_voice_to_voice_ms"]["p50"] > 0  # from the /metrics histogram
    assert figures["client_frame_lag_ms"]["p99"] is not None
    assert figures["server_cpu_pct"] is not None and figures["server_rss_mb"] > 0
    if protocol == "twilio":
        assert figures["server_frame_lag_ms"]["n"] > 0
    assert "turns answered" in out and "3/3" in out


async def test_bench_starts_its_own_stub_server_and_speaks_a_wav(tmp_path):
    wav = tmp_path / "hello.wav"
    with wave.open(str(wav), "wb") as w:  # 8 kHz: the bench resamples it
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(np.frombuffer(voiced(700), "<i2")[::2].tobytes())
    out_json = tmp_path / "out.json"
    code, _, err = await bench(
        "--calls", "2", "--turns", "2", "--ramp", "0.2", "--gap-ms", "300",
        "--utterance", str(wav), "--json", str(out_json),
    )  # fmt: skip
    assert code == 0, err
    figures = json.loads(out_json.read_text())
    assert figures["turns_sent"] == figures["turns_answered"] == 4
    assert figures["server_cpu_pct_per_call"] is not None  # it knows its own server's pid


async def test_bench_says_what_is_wrong_without_a_traceback(tmp_path):
    code, _, err = await bench("--url", "http://127.0.0.1:9", "--calls", "1")
    assert code == 1 and "no voicebot server answers" in err and "Traceback" not in err
    code, _, err = await bench("--utterance", str(tmp_path / "missing.wav"))
    assert code == 1 and "cannot read it as a WAV" in err and "Traceback" not in err


def test_performance_doc_has_a_command_for_every_readme_figure():
    readme = (ROOT / "README.md").read_text()
    measured = readme.split("## Measured", 1)[1].split("\n## ", 1)[0]
    commands = {
        row.rsplit("|", 2)[1].strip().strip("`")
        for row in measured.splitlines()
        if row.startswith("| ") and "`" in row.rsplit("|", 2)[1]
    }
    assert len(commands) >= 8
    doc = (ROOT / "docs" / "performance.md").read_text()
    assert not {c for c in commands if c not in doc}
    assert "docs/performance.md" in readme


@pytest.mark.parametrize("n", [160, 161, 162, 1600])
def test_the_twilio_caller_sizes_media_without_decoding(n):
    import base64

    from voicebot.bench.callers import _payload_bytes

    payload = base64.b64encode(bytes(n)).decode()
    for sep in ((",", ":"), (", ", ": ")):
        msg = json.dumps({"event": "media", "media": {"payload": payload}}, separators=sep)
        assert _payload_bytes(msg) == n
