"""`/metrics` through prometheus-client: what a call feeds it, the multi-worker aggregate, the
Grafana dashboard's queries, and the optional OpenTelemetry turn spans."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from voicebot.metrics import Metrics, mark_process_dead
from voicebot.providers import Message
from voicebot.providers.fallback import FallbackLLM

from .broken_llm import BrokenLLM
from .support import Client, base_config, serve

DASHBOARD = Path(__file__).parent.parent / "docs" / "grafana-dashboard.json"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a Prometheus text page: (name, sorted labels) → value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def typed_turns(server, n: int, *, cut_last: bool = False) -> None:
    """One browser call with `n` typed turns, each reply heard to the end before the next
    (typing over the bot would cut it off); with `cut_last`, the last reply is interrupted."""
    c = Client(await websockets.connect(f"{server.url}/ws/voice"))
    at, _ = await c.wait_for(lambda e: e.get("type") == "metrics" and e["turn"] == 0)  # greeting
    await c.wait_for(lambda e: e.get("status") == "listening", after=at)
    for turn in range(1, n + 1):
        await c.ws.send(json.dumps({"type": "text", "text": f"turn {turn}"}))
        at, _ = await c.wait_for(lambda e, t=turn: e.get("type") == "metrics" and e["turn"] == t)
        if turn == n and cut_last:
            await c.ws.send(json.dumps({"type": "interrupt"}))
            await c.wait_for(lambda e: e.get("status") == "interrupted")
        else:
            await c.wait_for(lambda e: e.get("status") == "listening", after=at)
    await c.ws.send(json.dumps({"type": "end_call"}))
    await c.close()  # the server closes with 1000 once the call has ended
    if server.runtime is not None:  # in this process: wait for its bookkeeping too
        await server.runtime.no_calls.wait()


async def scrape(server) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{server.http}/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=")
        return await r.text()


async def test_a_call_feeds_the_histograms_counters_and_gauge(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        await typed_turns(server, 2, cut_last=True)
        got = samples(await scrape(server))
    ws = (("transport", "websocket"),)
    assert got[("voicebot_turns_total", ws)] == 2  # the greeting is no turn
    for name in ("voice_to_voice", "llm_first_token", "tts_first_byte", "stt_final"):
        assert got[(f"voicebot_{name}_seconds_count", ws)] >= 2, name
    assert got[("voicebot_barge_ins_total", ws)] == 1
    outcome = (("outcome", "caller_hangup"), ("transport", "websocket"))
    assert got[("voicebot_calls_total", outcome)] == 1
    assert got[("voicebot_active_calls", ())] == 0
    assert got[("voicebot_event_loop_lag_seconds_count", ())] > 0


async def test_refused_calls_and_provider_errors_are_counted(tmp_path):
    cfg = base_config(plugins=["tests.testvad", "tests.broken_llm"])
    cfg["providers"]["llm"] = {"use": "broken"}
    cfg["security"] = {"limits": {"max_calls": 1}}
    async with serve(tmp_path, cfg) as server:
        first = Client(await websockets.connect(f"{server.url}/ws/voice"))
        await first.wait_for(lambda e: e.get("status") == "connected")
        await first.ws.send(json.dumps({"type": "text", "text": "hello"}))
        await first.wait_for(lambda e: e.get("code") == "provider_failed")
        second = Client(await websockets.connect(f"{server.url}/ws/voice"))
        await second.closed.wait()
        assert second.ws.close_code == 1013
        got = samples(await scrape(server))
        await first.close()
    assert got[("voicebot_provider_errors_total", (("role", "llm"),))] == 1
    refused = (("outcome", "rejected"), ("transport", "websocket"))
    assert got[("voicebot_calls_total", refused)] == 1
    assert got[("voicebot_active_calls", ())] == 1


async def test_a_fallback_chain_counts_each_hand_over():
    metrics = Metrics()
    stub = _stub_llm()
    chain = FallbackLLM([BrokenLLM(BrokenLLM.Options()), stub], budget=1.0, cooldown=0.0)
    chain.on_fallback = metrics.fell_back
    assert [piece async for piece in chain.stream([Message("user", "hi")])]
    got = samples(metrics.exposition()[0].decode())
    assert got[("voicebot_provider_fallbacks_total", (("provider", "broken"), ("role", "llm")))]


def _stub_llm():
    from voicebot_plugins.stub import StubLLM

    return StubLLM(StubLLM.Options())


WORKER = textwrap.dedent(
    """
    import sys
    from types import SimpleNamespace
    from voicebot.metrics import Metrics

    active, turns = int(sys.argv[1]), int(sys.argv[2])
    m = Metrics()
    call = SimpleNamespace(id="c", transport="twilio")
    m.active_calls.set(active)
    for _ in range(turns):
        m.turn_completed(call=call, turn={"turn": 1, "voice_to_voice_ms": 800.0})
    m.call_ended(call=call, reason="remote")
    """
)


def test_two_worker_processes_add_up_and_a_dead_one_leaves_the_gauge(tmp_path, monkeypatch):
    """Two real processes write to one PROMETHEUS_MULTIPROC_DIR; any process reading it serves
    their sum, and `mark_process_dead` drops a dead worker's live gauge (not its counts)."""
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    pids = []
    for active, turns in ((2, 3), (5, 4)):
        proc = subprocess.run(
            [sys.executable, "-c", WORKER, str(active), str(turns)],
            env=env,
            cwd=Path(__file__).parent.parent,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        pids.append(_pid_of(tmp_path, exclude=pids))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    got = samples(Metrics().exposition()[0].decode())
    twilio = (("transport", "twilio"),)
    assert got[("voicebot_active_calls", ())] == 7
    assert got[("voicebot_turns_total", twilio)] == 7
    assert got[("voicebot_voice_to_voice_seconds_count", twilio)] == 7
    ended = (("outcome", "caller_hangup"), ("transport", "twilio"))
    assert got[("voicebot_calls_total", ended)] == 2
    assert not any(name.startswith("process_") for name, _ in got)  # per-process: not summed
    mark_process_dead(pids[0])
    got = samples(Metrics().exposition()[0].decode())
    assert got[("voicebot_active_calls", ())] == 5
    assert got[("voicebot_turns_total", twilio)] == 7


def _pid_of(directory: Path, exclude: list[int]) -> int:
    """The pid a worker wrote its live gauge under (`gauge_livesum_<pid>.db`)."""
    found = {int(p.stem.rsplit("_", 1)[1]) for p in directory.glob("gauge_livesum_*.db")}
    (pid,) = found - set(exclude)
    return pid


def _dashboard_metric_names() -> set[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert exprs, "the dashboard has no queries"
    names = set()
    for expr in exprs:
        # drop label matchers and strings, then keep the identifiers that are metric names
        bare = re.sub(r"\{[^}]*\}|\"[^\"]*\"|\[[^\]]*\]", "", expr)
        names |= set(re.findall(r"\b(?:voicebot|process)_[a-zA-Z0-9_:]*", bare))
    return names


async def test_every_dashboard_query_names_a_metric_the_server_exposes(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        await typed_turns(server, 1)
        text = await scrape(server)
    # a labelled counter nothing has counted yet has no sample, but its family is declared
    exposed = {name for name, _ in samples(text)}
    for family in text_string_to_metric_families(text):
        exposed |= {family.name, f"{family.name}_total"} if family.type == "counter" else set()
    missing = _dashboard_metric_names() - exposed
    assert not missing, f"the dashboard queries metrics /metrics does not have: {missing}"


async def test_otel_traces_one_span_per_turn_stage(tmp_path):
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    cfg = base_config(server={"otel_traces": True})
    async with serve(tmp_path, cfg) as server:
        await typed_turns(server, 1)
    spans = exporter.get_finished_spans()
    turns = [s for s in spans if s.name == "turn"]
    (typed,) = turns  # the greeting is no turn
    assert typed.attributes["voicebot.turn"] == 1
    stages = sorted(
        (s for s in spans if s.parent and s.parent.span_id == typed.context.span_id),
        key=lambda s: s.start_time,
    )
    assert [s.name for s in stages] == [
        "endpointing",
        "stt",
        "llm_first_token",
        "tts_first_byte",
        "first_audio",
    ]
    assert stages[0].start_time == typed.start_time and stages[-1].end_time <= typed.end_time
    assert typed.attributes["voicebot.transport"] == "websocket"


async def test_traces_are_off_by_default(tmp_path):
    async with serve(tmp_path, base_config()) as server:
        assert server.runtime.metrics.tracer is None


def test_traces_without_opentelemetry_installed_say_what_to_install(tmp_path):
    (tmp_path / "config.yaml").write_text(json.dumps(base_config(server={"otel_traces": True})))
    hide = "import sys; sys.modules['opentelemetry'] = None; "  # as if the extra were missing
    # one process: a supervisor's workers would import opentelemetry afresh
    args = "['run', sys.argv[1], '--port', '0', '--workers', '1']"
    run = f"from voicebot.cli import main; sys.exit(main({args}))"
    proc = subprocess.run(
        [sys.executable, "-c", hide + run, str(tmp_path / "config.yaml")],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "pip install 'voicebot-runtime[otel]'" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_two_real_servers_sharing_a_multiproc_dir_add_up(tmp_path, monkeypatch):
    """What `voicebot run --workers N` relies on: two real servers, one call each, one sum."""
    shared = tmp_path / "prom"
    shared.mkdir()
    (tmp_path / "config.yaml").write_text(json.dumps(base_config()))
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    servers = []
    try:
        for _ in range(2):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "voicebot.cli", "run", str(tmp_path / "config.yaml"),
                "--port", "0", "--workers", "1", "--log-level", "WARNING",
                cwd=Path(__file__).parent.parent, env=env, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            servers.append(proc)
            line = await asyncio.wait_for(proc.stdout.readline(), 60)  # "... listening on URL"
            url = re.search(rb"http://[\d.]+:\d+", line).group().decode()
            await typed_turns(SimpleNamespace(url="ws" + url[4:], runtime=None), 1)
        live = samples(await scrape(SimpleNamespace(http=url)))  # the second server's page
    finally:
        for proc in servers:
            proc.terminate()  # drains: a call still closing is counted before the exit
            await proc.wait()
    ws = (("transport", "websocket"),)
    assert live[("voicebot_turns_total", ws)] == 2  # the first server's turn is in it
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    final = samples(Metrics().exposition()[0].decode())
    assert final[("voicebot_calls_total", (("outcome", "caller_hangup"), *ws))] == 2
    assert final[("voicebot_active_calls", ())] == 0
