"""One table of error codes with their integer status, and the docs say the same."""

from __future__ import annotations

import re
from pathlib import Path

from voicebot.protocol.errors import STATUS, status_of

ROOT = Path(__file__).parent.parent


def _codes_sent_by_the_server() -> set[str]:
    """Every string code the runtime puts in a browser `error`: `Error("code", …)`,
    `ProtocolError("code", …)`, `self.error("code", …)`, `_refuse_audio("code", …)`."""
    pattern = re.compile(
        r"(?:Error|ProtocolError|\.error|_refuse_audio|refuse\([^)]*?)\(\s*\"([a-z_]+)\""
    )
    found: set[str] = set()
    for path in (ROOT / "voicebot").rglob("*.py"):
        found |= set(pattern.findall(path.read_text()))
    return found


def test_every_code_the_server_sends_has_a_status() -> None:
    missing = _codes_sent_by_the_server() - set(STATUS)
    assert not missing, missing


def test_statuses_mean_what_http_means() -> None:
    assert all(400 <= s < 600 for s in STATUS.values())
    assert status_of("rate_limited") == 429 and status_of("stt_failed") == 502
    assert status_of("something_new") == 500


def test_the_docs_list_every_code_with_its_status() -> None:
    doc = (ROOT / "docs" / "protocol.md").read_text()
    table = dict(re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", doc, re.MULTILINE))
    assert {k: int(v) for k, v in table.items()} == STATUS
