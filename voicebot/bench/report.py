"""What `voicebot bench` prints and writes: one dict (the JSON) and a table made from it."""

from __future__ import annotations

import math
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from ..stats import percentile
from .load import Plan, Results

V2V_BUCKETS = "voicebot_voice_to_voice_seconds_bucket"


def _ms(values: list[float], q: float) -> float | None:
    return round(percentile(values, q), 1) if values else None


def histogram_buckets(metrics_text: str | None) -> dict[float, float]:
    """Cumulative voice-to-voice bucket counts (all transports) from a `/metrics` page."""
    out: dict[float, float] = {}
    if not metrics_text:
        return out
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == V2V_BUCKETS:
                le = float(s.labels["le"])
                out[le] = out.get(le, 0.0) + s.value
    return out


def histogram_quantile(before: dict[float, float], after: dict[float, float], q: float):
    """Prometheus's `histogram_quantile` over the bench's window (after − before), in ms."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, cum in zip(bounds, counts, strict=True):
        if cum >= rank:
            if math.isinf(bound):
                return round(lower * 1000, 1)  # above the top bucket: its lower edge
            width = cum - below
            share = (rank - below) / width if width else 1.0
            return round((lower + (bound - lower) * share) * 1000, 1)
        lower, below = bound, cum
    return None


def summary(
    plan: Plan,
    results: Results,
    *,
    cpu_s: float | None,
    window_s: float,
    rss_idle_mb: float | None,
    rss_busy_mb: float | None,
    server_v2v: dict[str, float | None],
    server_frame_lag: dict[str, Any] | None,
    hangover_ms: int | None = None,
) -> dict[str, Any]:
    per_call = max(1, plan.calls)
    cpu_pct = None if cpu_s is None else round(cpu_s / window_s * 100, 1)
    rss_per_call = (
        None
        if rss_idle_mb is None or rss_busy_mb is None
        else round((rss_busy_mb - rss_idle_mb) * 1024 / per_call, 1)
    )
    return {
        "protocol": plan.protocol,
        "url": plan.url,
        "calls": plan.calls,
        "turns_per_call": plan.turns,
        "ramp_s": plan.ramp_s,
        "turns_sent": results.turns_sent,
        "turns_answered": results.turns_answered,
        "failed_calls": len(results.failed_calls),
        "failures": sorted(set(results.failed_calls))[:5],
        "voice_to_voice_ms": {q: _ms(results.v2v_ms, p) for q, p in _QS},
        # exact where the door reports each turn (browser), else the /metrics histogram's estimate
        "server_voice_to_voice_ms": (
            {q: _ms(results.server_v2v_ms, p) for q, p in _QS}
            if results.server_v2v_ms
            else server_v2v
        ),
        "client_frame_lag_ms": {"p99": _ms(results.send_lag_ms, 0.99)},
        "server_frame_lag_ms": server_frame_lag,
        "server_cpu_pct": cpu_pct,
        "server_cpu_pct_per_call": None if cpu_pct is None else round(cpu_pct / per_call, 3),
        "server_rss_mb": rss_busy_mb and round(rss_busy_mb, 1),
        "server_rss_kb_per_call": rss_per_call,
        "hangover_ms": hangover_ms,
        "window_s": round(window_s, 1),
    }


_QS = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


def table(s: dict[str, Any]) -> str:
    def ms(d: dict[str, Any] | None, *keys: str) -> str:
        if not d:
            return "n/a"
        return " / ".join("n/a" if d.get(k) is None else f"{d[k]:g}" for k in keys)

    def opt(v: Any, unit: str) -> str:
        return "n/a (not started by the bench: pass --server-pid)" if v is None else f"{v}{unit}"

    rows = [
        ("protocol, calls × turns", f"{s['protocol']}, {s['calls']} × {s['turns_per_call']}"),
        ("turns answered", f"{s['turns_answered']}/{s['turns_sent']}"),
        ("failed calls", f"{s['failed_calls']} {' | '.join(s['failures'])}".strip()),
        ("voice-to-voice p50 / p95 / p99 (ms)", ms(s["voice_to_voice_ms"], "p50", "p95", "p99")),
        ("server voice-to-voice p50 / p95 (ms)", ms(s["server_voice_to_voice_ms"], "p50", "p95")),
        ("VAD hangover in both (ms)", "n/a" if s["hangover_ms"] is None else s["hangover_ms"]),
        ("frame lag p99, client (ms)", ms(s["client_frame_lag_ms"], "p99")),
        ("frame lag p99 / max, server (ms)", ms(s["server_frame_lag_ms"], "p99", "max")),
        ("server CPU (% of one core)", opt(s["server_cpu_pct"], " %")),
        ("server CPU per call", opt(s["server_cpu_pct_per_call"], " %")),
        ("server RSS", opt(s["server_rss_mb"], " MB")),
        ("server RSS per call", opt(s["server_rss_kb_per_call"], " KB")),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
