"""Call records and transcripts in SQLite, transcript text encrypted at rest.

Enabled by `storage.url` (`sqlite:///calls.db`, relative to the config file). Lifecycle hooks run on
the event loop and must not block, so they only redact the text (the `redact` hook) and enqueue; one
writer task hands batches to a single database thread, which also encrypts. Audio is never stored.

`storage.encrypt_key` is a comma-separated list of Fernet keys: the first encrypts, all decrypt, so
a key is rotated by putting a new one first and running
`python -m voicebot.records.storage rotate CONFIG`.

Erasing is not done when the rows are deleted: in WAL mode the old pages (ciphertext, and the
record metadata in the clear) stay in the `-wal` file until a checkpoint, so every erase and purge
ends with `wal_checkpoint(TRUNCATE)`. A process killed mid-call never writes its `end` record; the
next start marks such rows `outcome = 'lost'` (one server process per database file is assumed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ..config import Config, StorageConfig
from ..hookspecs import hookimpl

log = logging.getLogger("voicebot.storage")

QUEUE_MAX = 10_000  # pending writes; past this, records are dropped (and logged), never the loop
PURGE_EVERY_S = 3600.0
LOST = "lost"  # the outcome of a call whose process died before it ended (kill -9, a crash)
KEYGEN = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id TEXT PRIMARY KEY, session_id TEXT, subject TEXT, transport TEXT,
    started_at REAL NOT NULL, ended_at REAL, outcome TEXT, turns INTEGER
);
CREATE INDEX IF NOT EXISTS calls_session ON calls(session_id);
CREATE INDEX IF NOT EXISTS calls_started ON calls(started_at);
CREATE TABLE IF NOT EXISTS transcripts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, call_id TEXT NOT NULL, role TEXT NOT NULL,
    at REAL NOT NULL, interrupted INTEGER NOT NULL DEFAULT 0, text BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS transcripts_call ON transcripts(call_id);
"""


class StorageError(ValueError):
    """Storage is misconfigured; the message says how to fix it."""


def database_path(cfg: StorageConfig, resolve: Any = Path) -> Path:
    prefix = "sqlite:///"
    if not cfg.url.startswith(prefix):
        raise StorageError(
            f"storage.url '{cfg.url}' is not supported; use sqlite:///path/to/calls.db"
        )
    return Path(resolve(cfg.url[len(prefix) :]))


def cipher(cfg: StorageConfig) -> MultiFernet:
    keys = [k.strip() for k in cfg.encrypt_key.split(",") if k.strip()]
    if not keys:
        raise StorageError(
            f"storage.encrypt_key is empty; transcripts are always encrypted. Generate a key with "
            f"{KEYGEN} and set it through an environment variable"
        )
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except ValueError:
        raise StorageError(
            f"storage.encrypt_key: not a Fernet key (32 url-safe base64 bytes); make one with "
            f"{KEYGEN}"
        ) from None


class Database:
    """Blocking SQLite access; only ever used from the storage thread."""

    def __init__(self, path: Path, fernet: MultiFernet) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA secure_delete=ON")  # erased transcripts are zeroed on disk
        self.db.executescript(_SCHEMA)
        self.fernet = fernet

    def reconcile(self) -> int:
        """Close the rows of calls a previous process never ended, at their last stored line.
        Only the server runs it, at start-up: `rotate`/`purge` may run beside a live server."""
        with self.db:
            self.db.execute("BEGIN")
            return self.db.execute(
                "UPDATE calls SET outcome = ?, ended_at = MAX(started_at, COALESCE("
                "(SELECT MAX(at) FROM transcripts WHERE call_id = calls.id), started_at)) "
                "WHERE ended_at IS NULL",
                (LOST,),
            ).rowcount

    def _checkpoint(self) -> None:
        """Move the WAL into the database and empty it, so deleted pages leave the disk now."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def write(self, batch: list[tuple[str, tuple[Any, ...]]]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            for kind, args in batch:
                if kind == "call":
                    self.db.execute(
                        "INSERT OR IGNORE INTO calls (id, session_id, subject, transport, "
                        "started_at) VALUES (?, ?, ?, ?, ?)",
                        args,
                    )
                elif kind == "end":
                    self.db.execute(
                        "UPDATE calls SET ended_at = ?, outcome = ?, turns = ? WHERE id = ?", args
                    )
                else:
                    call_id, role, at, interrupted, text = args
                    self.db.execute(
                        "INSERT INTO transcripts (call_id, role, at, interrupted, text) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (call_id, role, at, interrupted, self.fernet.encrypt(text.encode())),
                    )

    def transcript(self, call_id: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT role, at, interrupted, text FROM transcripts WHERE call_id = ? ORDER BY id",
            (call_id,),
        ).fetchall()
        return [
            {"role": r, "at": at, "interrupted": bool(i), "text": self.fernet.decrypt(t).decode()}
            for r, at, i, t in rows
        ]

    def calls(self, session_id: str) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT * FROM calls WHERE session_id = ?", (session_id,))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def erase_session(self, session_id: str, subject: str | None) -> int:
        """Delete a session's calls and transcripts; `subject` (when auth is on) must own them."""
        where, args = "session_id = ?", [session_id]
        if subject is not None:
            where += " AND subject = ?"
            args.append(subject)
        with self.db:
            self.db.execute("BEGIN")
            ids = [r[0] for r in self.db.execute(f"SELECT id FROM calls WHERE {where}", args)]
            self.db.executemany("DELETE FROM transcripts WHERE call_id = ?", [(i,) for i in ids])
            self.db.execute(f"DELETE FROM calls WHERE {where}", args)
        self._checkpoint()
        return len(ids)

    def purge(self, older_than: float) -> int:
        with self.db:
            self.db.execute("BEGIN")
            old = "SELECT id FROM calls WHERE started_at < ?"
            self.db.execute(f"DELETE FROM transcripts WHERE call_id IN ({old})", (older_than,))
            n = self.db.execute("DELETE FROM calls WHERE started_at < ?", (older_than,)).rowcount
        if n:
            self._checkpoint()
        return n

    def rotate(self) -> int:
        """Re-encrypt every transcript with the first key, so older keys can be retired."""
        rows = self.db.execute("SELECT id, text FROM transcripts").fetchall()
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "UPDATE transcripts SET text = ? WHERE id = ?",
                [(self.fernet.rotate(t), i) for i, t in rows],
            )
        return len(rows)

    def close(self) -> None:
        self.db.close()


class Storage:
    """The built-in storage plugin: lifecycle hooks in, batched writes out on its own thread."""

    def __init__(self, cfg: StorageConfig, resolve: Any, hook: Any) -> None:
        self.cfg = cfg
        self._path = database_path(cfg, resolve)
        self._fernet = cipher(cfg)
        self._hook = hook
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voicebot-storage")
        self._queue: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue(QUEUE_MAX)
        self._db: Database | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def start(self) -> None:
        self._db = await self._run(Database, self._path, self._fernet)
        lost = await self._run(self._db.reconcile)
        if lost:
            log.warning(
                "storage: %d calls were never ended (the server stopped without ending them); "
                "marked outcome '%s'",
                lost,
                LOST,
            )
        self._tasks = [
            asyncio.ensure_future(self._writer()),
            asyncio.ensure_future(self._purger()),
        ]

    async def stop(self) -> None:
        await self.flush()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._db is not None:
            await self._run(self._db.close)
        self._pool.shutdown(wait=True)

    async def flush(self) -> None:
        """Wait until everything enqueued so far is on disk."""
        await self._queue.join()

    async def _writer(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 500:
                batch.append(self._queue.get_nowait())
            try:
                await self._run(self._db.write, batch)  # type: ignore[union-attr]
            except sqlite3.Error:
                log.exception("storage write failed; %d records lost", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _purger(self) -> None:
        while self.cfg.retention_days > 0:
            await self.purge()
            await asyncio.sleep(PURGE_EVERY_S)

    async def purge(self) -> int:
        cutoff = time.time() - self.cfg.retention_days * 86400
        n = await self._run(self._db.purge, cutoff)  # type: ignore[union-attr]
        if n:
            log.info("retention: purged %d calls older than %g days", n, self.cfg.retention_days)
        return n

    async def erase_session(self, session_id: str, subject: str | None) -> int:
        await self.flush()
        return await self._run(self._db.erase_session, session_id, subject)  # type: ignore[union-attr]

    async def calls(self, session_id: str) -> list[dict[str, Any]]:
        await self.flush()
        return await self._run(self._db.calls, session_id)  # type: ignore[union-attr]

    async def transcript_of(self, call_id: str) -> list[dict[str, Any]]:
        await self.flush()
        return await self._run(self._db.transcript, call_id)  # type: ignore[union-attr]

    def _put(self, kind: str, args: tuple[Any, ...]) -> None:
        try:
            self._queue.put_nowait((kind, args))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("storage is behind; dropped a %s record", kind)

    def _redacted(self, call: Any, text: str) -> str:
        masked = self._hook.redact(call=call, text=text)
        return text if masked is None else masked

    # ------------------------------------------------------------------------ lifecycle hooks

    @hookimpl
    def call_started(self, call: Any) -> None:
        subject = call.variables.get("subject")
        self._put("call", (call.id, call.session_id, subject, call.transport, call.started_at))

    @hookimpl
    def transcript(self, call: Any, transcript: Any) -> None:
        if transcript.text:
            text = self._redacted(call, transcript.text)
            self._put("text", (call.id, "user", time.time(), 0, text))

    @hookimpl
    def bot_spoke(self, call: Any, text: str, heard: str, interrupted: bool) -> None:
        spoken = heard if interrupted else text
        if spoken:
            spoken = self._redacted(call, spoken)
            self._put("text", (call.id, "assistant", time.time(), int(interrupted), spoken))

    @hookimpl
    def call_ended(self, call: Any, reason: str) -> None:
        self._put("end", (time.time(), reason, call.turns_count, call.id))


def main(argv: list[str] | None = None) -> int:
    """`python -m voicebot.records.storage rotate CONFIG`: re-encrypt transcripts with the newest
    key."""
    from ..config import load_config

    parser = argparse.ArgumentParser(prog="python -m voicebot.records.storage")
    parser.add_argument("command", choices=["rotate", "purge"])
    parser.add_argument("config")
    args = parser.parse_args(argv)
    cfg: Config = load_config(args.config)
    db = Database(database_path(cfg.storage, cfg.resolve), cipher(cfg.storage))
    with contextlib.closing(db):
        try:
            if args.command == "rotate":
                print(f"re-encrypted {db.rotate()} transcripts with the first key")
            elif cfg.storage.retention_days <= 0:
                print("storage.retention_days is 0: records are kept until erased")
            else:
                cutoff = time.time() - cfg.storage.retention_days * 86400
                print(f"purged {db.purge(cutoff)} calls")
        except InvalidToken:
            print("a transcript could not be decrypted with any key in storage.encrypt_key")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
