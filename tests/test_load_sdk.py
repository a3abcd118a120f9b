"""benchmarks/load_sdk.py, the issue-14 load generator: it runs end to end and prints its
figures, and it counts each server process's CPU once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import load_sdk  # noqa: E402

BURN = "import time; t = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"


def test_a_server_tree_is_counted_once(tmp_path):
    """`--workers N` once read twice its CPU: each worker was added to a total that already
    held it. A parent with a child that burns 0.3 s: the tree's CPU is the two processes'."""
    # the child stays alive: a reaped child's CPU would move into its parent's
    script = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        f"{BURN + 'print(1, flush=True); import sys; sys.stdin.read()'!r}], "
        "stdout=subprocess.PIPE, stdin=subprocess.PIPE)\n"
        "child.stdout.readline(); print('burnt', flush=True); sys.stdin.read()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout.readline().strip() == "burnt"
        by_process = load_sdk.process_cpu(parent.pid)
        assert len(by_process) == 2
        assert max(by_process.values()) >= 0.25  # the child's burn
        total, _rss = load_sdk.tree_stats(parent.pid)
        assert total == pytest.approx(sum(by_process.values()), abs=0.05)
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.slow
async def test_it_runs_two_calls_and_prints_the_figures(tmp_path):
    out = tmp_path / "rows.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "benchmarks" / "load_sdk.py"),
        *("--calls", "2", "--turns", "1", "--workers", "1", "--ramp", "0.2"),
        *("--json", str(out)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    lines = stdout.decode().splitlines()
    assert lines[0].startswith("calls | done/failed | turns answered"), lines
    assert lines[1].startswith("2 | 2/0 [] | 2/2 |"), lines
    [row] = json.loads(out.read_text())
    assert row["calls"] == 2 and row["answered"] == row["turns"] == 2
    assert row["v2v_p50"] > 0 and row["cpu_ms_per_call"] > 0
    assert len(row["process_cpu_pct"]) == 1  # one process: no supervisor
