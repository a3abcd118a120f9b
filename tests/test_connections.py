"""Connection-level protections over real sockets: slow headers are cut off, one address cannot
hold more than its share of connections, `/health` stays reachable meanwhile, and client garbage
is one quiet log line, not a traceback per request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import sys
import time

import aiohttp
import websockets
import yaml

from voicebot.server.connections import ACCEPT_EXHAUSTED

from .support import Client, base_config, serve
from .test_cli import free_port
from .test_limits import still_served

ATTACKER = "127.0.0.2"  # the whole of 127/8 is loopback on Linux: a second client address


def guarded(**limits) -> dict:
    cfg = base_config()
    cfg["security"] = {"limits": limits}
    return cfg


async def raw(port: int, source: str = ATTACKER):
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def answer(reader: asyncio.StreamReader, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes the socket."""
    return await asyncio.wait_for(reader.read(), timeout)


async def health(server, source: str = "127.0.0.1") -> int:
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.get(f"{server.http}/health", timeout=aiohttp.ClientTimeout(total=5)) as r,
    ):
        return r.status


async def test_slow_headers_get_408_and_are_closed_while_health_and_calls_go_on(tmp_path):
    async with serve(tmp_path, guarded(header_timeout_s=1.0, max_connections_per_client=50)) as s:
        bystander = Client(await websockets.connect(f"{s.url}/ws/voice"))
        await bystander.wait_for(lambda e: e.get("status") == "connected")
        start = time.monotonic()
        half_open = [await raw(s.port) for _ in range(6)]
        for _, writer in half_open:
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        silent = await raw(s.port)  # connects and never sends a byte
        trickler = await raw(s.port)  # a byte every 100 ms never extends the deadline

        async def trickle() -> None:
            for byte in b"GET /health HTTP/1.1\r\nHost: x\r\n" * 4:
                if trickler[1].is_closing():
                    return
                trickler[1].write(bytes([byte]))
                await asyncio.sleep(0.1)  # pacing a slow client, not waiting for an outcome

        trickling = asyncio.ensure_future(trickle())
        assert await health(s) == 200  # while they are all held
        for reader, _ in [*half_open, silent, trickler]:
            reply = await answer(reader)
            assert reply.startswith(b"HTTP/1.1 408") and b'"header_timeout"' in reply
        assert time.monotonic() - start >= 0.9  # cut at the deadline, not at once
        trickling.cancel()
        # a kept-alive connection's next request has its own deadline
        reader, writer = await raw(s.port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(
            b"HTTP/1.1 200"
        )
        writer.write(b"GET /health HTTP/1.1\r\nHo")
        assert b"HTTP/1.1 408" in await answer(reader)
        # the bystander's WebSocket is older than the deadline and still served
        await still_served(bystander)
        await bystander.close()
        for _, w in [*half_open, silent, trickler, (reader, writer)]:
            w.close()
        await _until(lambda: not s.runner.guard.per_client)


async def test_connections_over_the_per_address_cap_get_503(tmp_path):
    async with serve(tmp_path, guarded(header_timeout_s=30, max_connections_per_client=3)) as s:
        held = [await raw(s.port) for _ in range(3)]
        await _until(lambda: s.runner.guard.per_client[ATTACKER] == 3)
        reader, _ = await raw(s.port)
        reply = await answer(reader)
        assert reply.startswith(b"HTTP/1.1 503") and b'"too_many_connections"' in reply
        assert await health(s) == 200  # another address is not affected
        held.pop()[1].close()
        await _until(lambda: s.runner.guard.per_client[ATTACKER] == 2)
        assert await health(s, ATTACKER) == 200  # a freed slot is usable again
        for _, writer in held:
            writer.close()
        await _until(lambda: not s.runner.guard.per_client)


async def test_malformed_requests_are_one_quiet_line_without_a_traceback(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    garbage = [
        b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        b"GET /?token=hunter2secret" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer hunter2secret"
        + b"b" * 9000
        + b"\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),
    ]
    async with serve(tmp_path, base_config()) as s:
        for data in garbage:
            reader, writer = await raw(s.port)
            writer.write(data)
            reply = await answer(reader)
            assert reply[:12] in (b"HTTP/1.1 400", b"HTTP/1.0 400"), reply[:60]
            assert b'"code": "bad_request"' in reply
            writer.close()
        assert await health(s) == 200
    assert not [r for r in caplog.records if r.exc_info], "a malformed request logged a traceback"
    lines = [r for r in caplog.records if "malformed HTTP request" in r.getMessage()]
    assert len(lines) == 1 and ATTACKER in lines[0].getMessage()
    assert "hunter2secret" not in caplog.text


async def test_accept_out_of_descriptors_is_logged_once_not_per_retry(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    async with serve(tmp_path, base_config()):
        loop = asyncio.get_running_loop()
        for _ in range(50):
            loop.call_exception_handler(
                {"message": ACCEPT_EXHAUSTED, "exception": OSError(24, "Too many open files")}
            )
    lines = [r for r in caplog.records if "cannot accept connections" in r.getMessage()]
    assert len(lines) == 1 and not lines[0].exc_info


async def test_run_raises_the_soft_fd_limit_and_sheds_load_past_it(tmp_path):
    """A real `voicebot run` whose soft fd limit starts at 64 (hard 256): it lifts the soft limit,
    and past the hard one it keeps serving `/health` with one quiet line, not a traceback storm."""
    cfg = guarded(header_timeout_s=1.0, max_connections_per_client=0)
    cfg["plugins"] = []
    cfg["providers"]["vad"] = {"use": "energy"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    port = free_port()

    hard = min(256, resource.getrlimit(resource.RLIMIT_NOFILE)[1])  # may not be raised unprivileged

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))

    proc = await asyncio.create_subprocess_exec(
        # one process: its own fd limit is what is under test, not the spread over workers
        sys.executable, "-m", "voicebot.cli", "run", str(path), "--port", str(port),
        "--workers", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=low_limit,
    )  # fmt: skip
    output: list[str] = []
    listening = asyncio.Event()

    async def read_output() -> None:  # drained all along, so the server never blocks on the pipe
        async for line in proc.stdout:
            output.append(line.decode())
            if "listening on" in output[-1]:
                listening.set()

    reading = asyncio.ensure_future(read_output())
    held = []
    try:
        await asyncio.wait_for(listening.wait(), 30)
        limits = open(f"/proc/{proc.pid}/limits").read()  # noqa: ASYNC230 - procfs, instant
        assert next(ln for ln in limits.splitlines() if "open files" in ln).split()[3] == str(hard)
        for _ in range(hard + 44):  # past the hard limit: accept() fails with EMFILE for a while
            with contextlib.suppress(OSError):
                held.append(await raw(port))
        for reader, _ in held:  # the header deadline frees them
            with contextlib.suppress(OSError, TimeoutError):
                await answer(reader, 10)
        assert await health_at(port) == 200
    finally:
        for _, writer in held:
            writer.close()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
        await asyncio.wait_for(reading, 10)
    out = "".join(output)
    assert "Traceback" not in out, out[-3000:]
    assert 1 <= out.count("cannot accept connections") <= 3, out[-3000:]


async def health_at(port: int) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/health", timeout=aiohttp.ClientTimeout(total=5)) as r,
    ):
        return r.status


async def _until(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
