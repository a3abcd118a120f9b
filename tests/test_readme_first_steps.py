"""What a first-time user needs before the README's first command works: a supported Python, a
virtual environment, and knowing why the page may not get the microphone."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_names_the_python_that_pyproject_requires():
    required = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    version = required.removeprefix(">=")
    assert f"Python {version} or newer" in README


def test_readme_shows_how_to_make_a_virtualenv():
    assert re.search(r"^python3? -m venv \.venv && \. \.venv/bin/activate", README, re.MULTILINE)


def test_readme_says_the_microphone_needs_localhost_or_https():
    intro = README[: README.index("## What you get")]
    assert "microphone" in intro and "localhost" in intro and "https" in intro
