"""Privacy: no audio on disk, transcripts redacted and encrypted, sessions erasable, an audit trail
without content."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import aiohttp
import pytest
import websockets
from cryptography.fernet import Fernet, MultiFernet

from voicebot.config import StorageConfig
from voicebot.records.storage import Database, StorageError, cipher
from voicebot.server.appkeys import STORAGE

from .support import Client, base_config, serve, silence, tone
from .test_voice_ws import _no_calls_left

CARD = "4111 1111 1111 1111"


def stored_config(tmp_path: Path, key: str) -> dict:
    cfg = base_config(storage={"url": "sqlite:///data/calls.db", "encrypt_key": key})
    cfg["plugins"] = ["tests.testvad", "tests.redact_plugin"]
    cfg["providers"]["stt"] = {"use": "stub", "text": f"my card is {CARD}"}
    cfg["providers"]["tts"] = {"use": "stub", "ms_per_char": 2}
    return cfg


async def one_turn(server, query: str = "") -> tuple[Client, bytes]:
    c = Client(await websockets.connect(f"{server.url}/ws/voice{query}"))
    await c.wait_for(lambda e: e.get("type") == "response" and e["final"])  # greeting
    speech = silence(200) + tone(400, freq=523.0) + silence(400)
    await c.stream(speech)
    await c.wait_for(lambda e: e.get("type") == "response" and e["final"] and "card" in e["text"])
    await c.wait_audio(3200)
    return c, speech


def _changed_files(roots: list[Path], since: float) -> list[Path]:
    found = []
    for root in roots:
        for dirpath, dirnames, files in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in (".git", "__pycache__")]
            for name in files:
                p = Path(dirpath, name)
                try:
                    st = p.stat()
                except OSError:
                    continue  # another process's file came and went
                if st.st_mtime >= since and st.st_size < 64 * 1024 * 1024 and p.is_file():
                    found.append(p)
    return found


async def test_no_audio_reaches_the_disk(tmp_path):
    """Scan the working directory and the temp dir for any trace of the call's audio."""
    roots = [Path.cwd(), Path(tempfile.gettempdir()), tmp_path]
    key = Fernet.generate_key().decode()
    async with serve(tmp_path, stored_config(tmp_path, key)) as server:
        # "now" as the filesystem stamps it, so the scan agrees with mtimes whatever the wall clock
        marker = tmp_path / "scan-start"
        marker.touch()
        start = marker.stat().st_mtime - 1  # mtime granularity
        c, speech = await one_turn(server)
        received = b"".join(a for _, a in c.audio)
        await c.close()
        await _no_calls_left(server)
        await server.runner.app[STORAGE].flush()
        # 640-byte (20 ms) windows of what the caller said and what the bot played
        needles = [speech[i : i + 640] for i in range(6400, 6400 + 12800, 3200)]
        needles += [received[i : i + 640] for i in range(0, min(len(received), 16000), 3200)]
        needles = [n for n in needles if any(n)]  # silence would match any zeroed page
        assert len(needles) >= 6
        changed = _changed_files(roots, start)
        assert any(p.name.startswith("calls.db") for p in changed)  # the scan does see new files
        for path in changed:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            assert not any(n in data for n in needles), f"audio found in {path}"
            assert path.suffix not in (".wav", ".pcm", ".raw", ".ulaw", ".webm", ".ogg")


async def test_transcripts_redacted_and_encrypted_then_erased(tmp_path):
    key = Fernet.generate_key().decode()
    async with (
        serve(tmp_path, stored_config(tmp_path, key)) as server,
        aiohttp.ClientSession() as http,
    ):
        async with http.post(f"{server.http}/api/v1/sessions", json={}) as r:
            sid = (await r.json())["session_id"]
        c, _ = await one_turn(server, f"?session_id={sid}")
        await c.close()
        await _no_calls_left(server)
        storage = server.runner.app[STORAGE]
        (call,) = await storage.calls(sid)
        assert call["outcome"] and call["ended_at"] >= call["started_at"]
        lines = await storage.transcript_of(call["id"])
        user = [line["text"] for line in lines if line["role"] == "user"]
        bot = " ".join(line["text"] for line in lines if line["role"] == "assistant")
        assert user == ["my card is #### #### #### ####"]
        assert "#### #### #### ####" in bot and "4111" not in bot
        raw = (tmp_path / "data" / "calls.db").read_bytes()
        raw += b"".join(p.read_bytes() for p in (tmp_path / "data").glob("calls.db-*"))
        assert b"my card" not in raw and b"Anything else" not in raw  # encrypted at rest
        async with http.delete(f"{server.http}/api/v1/sessions/{sid}") as r:
            assert r.status == 200 and (await r.json())["calls_erased"] == 1
        assert await storage.calls(sid) == []
        assert await storage.transcript_of(call["id"]) == []
        async with http.delete(f"{server.http}/api/v1/sessions/{sid}") as r:
            assert r.status == 404


def test_retention_purge_and_key_rotation(tmp_path):
    old, new = Fernet.generate_key(), Fernet.generate_key()
    db = Database(tmp_path / "c.db", MultiFernet([Fernet(old)]))
    now = time.time()
    db.write(
        [
            ("call", ("old", "s1", None, "websocket", now - 40 * 86400)),
            ("text", ("old", "user", now, 0, "long ago")),
            ("call", ("new", "s2", None, "websocket", now)),
            ("text", ("new", "user", now, 0, "just now")),
        ]
    )
    assert db.purge(now - 30 * 86400) == 1
    assert db.transcript("old") == [] and db.calls("s1") == []
    db.close()
    # rotation: the new key first, the old one still listed until `rotate` has run
    db = Database(tmp_path / "c.db", MultiFernet([Fernet(new), Fernet(old)]))
    assert db.rotate() == 1
    db.close()
    db = Database(tmp_path / "c.db", MultiFernet([Fernet(new)]))
    assert db.transcript("new")[0]["text"] == "just now"
    db.close()
    rows = sqlite3.connect(tmp_path / "c.db").execute("SELECT text FROM transcripts").fetchall()
    assert all(b"just now" not in r[0] for r in rows)


def test_storage_config_errors_say_what_to_do():
    with pytest.raises(StorageError, match="generate_key"):
        cipher(StorageConfig(url="sqlite:///x.db"))
    with pytest.raises(StorageError, match="not a Fernet key"):
        cipher(StorageConfig(url="sqlite:///x.db", encrypt_key="short"))


async def test_audit_log_has_who_and_how_never_what(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="voicebot.audit")
    key = Fernet.generate_key().decode()
    async with serve(tmp_path, stored_config(tmp_path, key)) as server:
        c, _ = await one_turn(server)
        await c.close()
        await _no_calls_left(server)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "voicebot.audit"]
    started = [x for x in lines if x["event"] == "call_started"]
    ended = [x for x in lines if x["event"] == "call_ended"]
    assert len(started) == 1 and len(ended) == 1
    assert started[0]["transport"] == "websocket" and started[0]["call_id"] == ended[0]["call_id"]
    assert ended[0]["duration_s"] > 0 and ended[0]["outcome"] and ended[0]["turns"] >= 1
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "card" not in text and "4111" not in text


async def test_typed_text_is_stored_like_speech(tmp_path):
    key = Fernet.generate_key().decode()
    async with serve(tmp_path, stored_config(tmp_path, key)) as server:
        c = Client(await websockets.connect(f"{server.url}/ws/voice"))
        _, ev = await c.wait_for(lambda e: e.get("status") == "connected")
        await c.ws.send(json.dumps({"type": "text", "text": "pin 1234"}))
        await c.wait_for(
            lambda e: e.get("type") == "response" and e["final"] and "pin" in e["text"]
        )
        await c.close()
        await _no_calls_left(server)
        lines = await server.runner.app[STORAGE].transcript_of(ev["call_id"])
        assert [x["text"] for x in lines if x["role"] == "user"] == ["pin ####"]


def _disk_bytes(db_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))


def test_erase_and_purge_leave_nothing_in_the_wal(tmp_path):
    """WAL mode keeps old page images in `-wal` until a checkpoint: an erased transcript's
    ciphertext and its call's metadata were still on disk after the erase returned."""
    path = tmp_path / "c.db"
    db = Database(path, MultiFernet([Fernet(Fernet.generate_key())]))
    now = time.time()
    db.write(
        [
            ("call", ("call-erase-me", "sess-erase-me", "alice", "websocket", now)),
            ("text", ("call-erase-me", "user", now, 0, "secret words")),
            ("call", ("call-too-old", "sess-too-old", "bob", "websocket", now - 40 * 86400)),
            ("text", ("call-too-old", "user", now, 0, "old words")),
            ("call", ("call-kept", "sess-kept", "carol", "websocket", now)),
        ]
    )
    erased, old = (
        db.db.execute("SELECT text FROM transcripts WHERE call_id = ?", (c,)).fetchone()[0]
        for c in ("call-erase-me", "call-too-old")
    )
    assert erased in _disk_bytes(path)  # the test sees what it is looking for
    assert db.erase_session("sess-erase-me", None) == 1
    on_disk = _disk_bytes(path)
    assert erased not in on_disk and b"sess-erase-me" not in on_disk
    assert db.purge(now - 30 * 86400) == 1
    on_disk = _disk_bytes(path)
    assert old not in on_disk and b"sess-too-old" not in on_disk
    assert db.calls("sess-kept")[0]["subject"] == "carol"
    db.close()


async def test_calls_cut_off_by_a_kill_are_marked_lost_at_start_up(tmp_path, caplog):
    """After kill -9 a call's row kept `ended_at`/`outcome` NULL forever."""
    key = Fernet.generate_key().decode()
    (tmp_path / "data").mkdir()
    db = Database(tmp_path / "data" / "calls.db", MultiFernet([Fernet(key)]))
    t = time.time() - 3600  # within retention, so the start-up purge keeps them
    db.write(
        [
            ("call", ("killed", "s-killed", None, "websocket", t)),
            ("text", ("killed", "user", t + 4.5, 0, "last words")),
            ("call", ("killed-early", "s-early", None, "websocket", t + 10)),
            ("call", ("ended", "s-ended", None, "websocket", t + 20)),
            ("end", (t + 30, "client disconnected", 1, "ended")),
        ]
    )
    db.close()
    caplog.set_level(logging.WARNING, logger="voicebot.storage")
    async with serve(tmp_path, stored_config(tmp_path, key)) as server:
        storage = server.runner.app[STORAGE]
        (killed,) = await storage.calls("s-killed")
        (early,) = await storage.calls("s-early")
        (ended,) = await storage.calls("s-ended")
    assert (killed["outcome"], killed["ended_at"]) == ("lost", t + 4.5)
    assert (early["outcome"], early["ended_at"]) == ("lost", t + 10)
    assert (ended["outcome"], ended["ended_at"]) == ("client disconnected", t + 30)
    assert "2 calls were never ended" in caplog.text
