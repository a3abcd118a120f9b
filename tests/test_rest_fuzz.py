"""Property: whatever body a client sends to the REST routes, the answer is a 2xx, or a 4xx with
a JSON reason; never a 5xx, never a traceback in the log.

Hypothesis drives synchronous requests, so the server runs on its own event loop in a thread
(a real loopback socket, as in every other test); one server serves all examples."""

from __future__ import annotations

import asyncio
import base64
import gzip
import http.client
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .support import serve
from .test_sessions import flows_config

EXAMPLES = 100


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def server_port(tmp_path_factory) -> Iterator[tuple[int, Recorder]]:
    cfg = flows_config(create_burst=1_000_000, create_per_minute=1_000_000, max_total_bytes=1 << 30)
    ready: threading.Event = threading.Event()
    port: list[int] = []
    stop: list[asyncio.Event] = []
    loop_box: list[asyncio.AbstractEventLoop] = []

    async def run(tmp: Path) -> None:
        async with serve(tmp, cfg) as server:
            port.append(server.port)
            stop.append(asyncio.Event())
            loop_box.append(asyncio.get_running_loop())
            ready.set()
            await stop[0].wait()

    recorder = Recorder()
    logging.getLogger().addHandler(recorder)
    thread = threading.Thread(target=asyncio.run, args=(run(tmp_path_factory.mktemp("fuzz")),))
    thread.start()
    try:
        assert ready.wait(30), "the server did not start"
        yield port[0], recorder
    finally:
        if loop_box:
            loop_box[0].call_soon_threadsafe(stop[0].set)
        thread.join(30)
        logging.getLogger().removeHandler(recorder)


def send(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read(), r.getheader("Content-Type", "")
    finally:
        conn.close()


def check(server_port: tuple[int, Recorder], path: str, body: bytes, headers: dict) -> dict:
    port, recorder = server_port
    status, raw, ctype = send(port, path, body, headers)
    assert status < 500, (status, raw[:300])
    assert ctype.startswith("application/json"), (status, raw[:300])
    answer = json.loads(raw)
    if status >= 400:
        assert answer["type"] == "error" and answer["code"] and answer["message"], answer
    errors = [r.getMessage() for r in recorder.records]
    assert not errors, errors
    return answer


# ------------------------------------------------------------------------------- strategies

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["main", "booking", "", "../../etc/passwd", "hello", "AAAA", "x" * 3000])
)
values = st.recursive(
    scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)


def objects(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=6), values, max_size=4)


def encoded(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """A JSON text of the value (NaN and all, as Python writes it), or raw bytes, or a body
    nested deeper than any parser's recursion limit."""
    return st.one_of(
        strategy.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=200),
        st.sampled_from([2, 999, 1001, 5000]).map(lambda n: b"[" * n + b"]" * n),
    )


headers = st.fixed_dictionaries(
    {"Content-Type": st.sampled_from(["application/json", "text/plain", ""])},
    optional={
        "charset": st.sampled_from(["utf-8", "latin-1", "utf-16", "bogus", "rot13", ""]),
        "Content-Encoding": st.sampled_from(["gzip", "deflate", "br", "identity", "x"]),
        "gzip-body": st.sampled_from(["whole", "truncated", "no"]),
    },
)


def prepare(body: bytes, h: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    out = {"Content-Type": h["Content-Type"]}
    if "charset" in h and h["Content-Type"]:
        out["Content-Type"] += f"; charset={h['charset']}"
    if "Content-Encoding" in h:
        out["Content-Encoding"] = h["Content-Encoding"]
        if h.get("gzip-body") == "whole":
            body = gzip.compress(body)
        elif h.get("gzip-body") == "truncated":
            body = gzip.compress(body)[: max(1, len(body) // 2)]
    return body, out


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(encoded(objects(["text", "session_id"])), headers)
def test_chat_bodies(server_port, body, h):
    check(server_port, "/api/chat", *prepare(body, h))


@FUZZ
@given(encoded(objects(["namespace", "flow", "metadata"])), headers)
def test_session_bodies(server_port, body, h):
    answer = check(server_port, "/api/v1/sessions", *prepare(body, h))
    if "session_id" in answer:  # created: then with a flow a call can start in
        try:
            sent = json.loads(body) if body.strip() else {}
        except ValueError:  # JSON only in the charset the request named
            return
        if not isinstance(sent, dict):  # a gzip body cut short: the server read a prefix
            return
        assert sent.get("flow") in (None, "main", "booking", "support"), sent


audio_values = values | st.binary(max_size=120).map(lambda b: base64.b64encode(b).decode())
query = st.fixed_dictionaries(
    {},
    optional={
        "sample_rate": st.sampled_from(["8000", "16000", "48000", "0", "-1", "1e9", "x", "9" * 40]),
        "encoding": st.sampled_from(["pcm_s16le", "mulaw", "alaw", "webm", "opus", ""]),
    },
)


@FUZZ
@given(
    encoded(st.dictionaries(st.just("audio") | st.text(max_size=6), audio_values, max_size=3)),
    headers,
    query,
)
def test_transcribe_bodies(server_port, body, h, q):
    path = "/api/transcribe?" + "&".join(f"{k}={v}" for k, v in q.items())
    check(server_port, path, *prepare(body, h))
