"""`voicebot` on the package index is somebody else's project (2018): nothing we write may tell a
user, or a plugin's packaging, to install it. Ours is `voicebot-runtime`."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIST = "voicebot-runtime"

# `pip install voicebot`, `pip install "voicebot[cloud]"`, `"voicebot>=0.1"` in a dependency
# list, `voicebot[local]` anywhere: each names the wrong distribution.
WRONG = re.compile(
    r"pip3? install[^\n`&|;#(]*?\s['\"]?voicebot(?![\w./-])"
    r"|(?<![\w./-])voicebot\["
    r"|['\"]voicebot\s*(?:[<>=!~]=?|;)"
)


def sources() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "pyproject.toml", *sorted((ROOT / "docs").glob("*.md"))]
    for package in ("voicebot", "plugins", "benchmarks"):
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def test_the_distribution_is_not_called_voicebot():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DIST
    assert project["scripts"]["voicebot"] == "voicebot.cli:main"  # the command keeps its name
    assert project["optional-dependencies"]["dev"][0].startswith(f"{DIST}[")


def test_nothing_tells_anyone_to_install_the_other_voicebot():
    found = [
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r}"
        for path in sources()
        for text in [path.read_text()]
        for m in WRONG.finditer(text)
    ]
    assert not found, "\n".join(found)


def test_the_pattern_catches_the_old_spellings():
    for bad in (
        'pip install "voicebot[cloud]"',
        "pip install voicebot",
        "pip install -U voicebot",
        "dependencies = ['voicebot>=0.1']",
        "(or: pip install 'voicebot[local]')",
    ):
        assert WRONG.search(bad), bad
    for good in (
        "pip install -e '.[local]' && voicebot run config.yaml",
        f'pip install "{DIST}[cloud]"',
        "voicebot plugins -v",
        "from voicebot.providers import TTS",
        "[project.entry-points.voicebot]",
    ):
        assert not WRONG.search(good), good
