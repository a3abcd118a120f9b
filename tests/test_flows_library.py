"""Hot reload: an edited flow changes the next call; a broken edit keeps the last good one."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from voicebot.dialogue import DialogueContext, Say, UserInput
from voicebot.flows import FlowError, FlowLibrary

from .flows_helpers import write

V1 = "nodes:\n  hi:\n    say: Version one.\n    hangup:\n"
V2 = "nodes:\n  hi:\n    say: Version two.\n    hangup:\n"
BROKEN = "nodes:\n  hi:\n    say: Broken.\n    next: nowhere\n"


def bump(path: Path, text: str) -> None:
    """Write and move the mtime forward, so the change is seen even within one clock tick."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


async def greeting(library: FlowLibrary) -> str:
    d = library.new_dialogue(DialogueContext(call_id="c", variables={}))
    return " ".join([x.text async for x in d.start() if isinstance(x, Say)])


async def test_edit_reaches_next_call_and_broken_edit_is_refused(tmp_path: Path, caplog) -> None:
    write(tmp_path, main=V1)
    library = FlowLibrary(tmp_path, "main", "UTC", check_interval=0)
    running = library.new_dialogue(DialogueContext(call_id="old", variables={}))
    assert await greeting(library) == "Version one."

    bump(tmp_path / "main.yaml", V2)
    assert await greeting(library) == "Version two."
    assert library.version == 2
    # a call that started before the edit keeps its version
    assert [x.text async for x in running.start() if isinstance(x, Say)] == ["Version one."]

    with caplog.at_level(logging.ERROR, logger="voicebot.flows"):
        bump(tmp_path / "main.yaml", BROKEN)
        assert await greeting(library) == "Version two."
    assert library.version == 2
    assert library.last_problems == [
        f"{tmp_path}/main.yaml:4:11: node 'hi' goes to 'nowhere' which does not exist"
    ]
    assert "still serving version 2" in caplog.text and "nowhere" in caplog.text

    bump(tmp_path / "main.yaml", V1)
    assert await greeting(library) == "Version one." and library.version == 3


async def test_a_new_file_and_a_deleted_file_are_noticed(tmp_path: Path) -> None:
    write(tmp_path, main="nodes:\n  a:\n    goto: extra\n", extra=V1)
    library = FlowLibrary(tmp_path, "main", "UTC", check_interval=0)
    assert await greeting(library) == "Version one."
    (tmp_path / "extra.yaml").unlink()  # main now points nowhere: refused
    assert library.reload_if_changed() is False
    assert await greeting(library) == "Version one."


async def test_checks_at_most_once_per_interval(tmp_path: Path) -> None:
    write(tmp_path, main=V1)
    library = FlowLibrary(tmp_path, "main", "UTC", check_interval=3600)
    bump(tmp_path / "main.yaml", V2)
    assert await greeting(library) == "Version one."  # not rechecked yet
    assert library.reload_if_changed() is True
    assert await greeting(library) == "Version two."


def test_broken_flows_at_startup_and_unknown_start(tmp_path: Path) -> None:
    write(tmp_path, main=BROKEN)
    with pytest.raises(FlowError):
        FlowLibrary(tmp_path, "main", "UTC")
    write(tmp_path, main=V1)
    with pytest.raises(FlowError, match=r"flows\.start is 'welcome' but there is no flow"):
        FlowLibrary(tmp_path, "welcome", "UTC")


async def test_new_dialogue_can_pick_another_flow(tmp_path: Path) -> None:
    write(tmp_path, main=V1, other=V2)
    library = FlowLibrary(tmp_path, "main", "UTC")
    d = library.new_dialogue(DialogueContext(call_id="c", variables={}), flow="other")
    assert [x.text async for x in d.start() if isinstance(x, Say)] == ["Version two."]
    with pytest.raises(ValueError, match="no flow named 'nope'; flows: main, other"):
        library.new_dialogue(DialogueContext(call_id="c", variables={}), flow="nope")


async def test_restore_a_call_from_its_snapshot(tmp_path: Path) -> None:
    write(
        tmp_path,
        main="""
        slots:
          n: {type: integer, prompt: How many?}
          name: {type: text, prompt: Your name?}
        nodes:
          a:
            ask: [n, name]
            next: b
          b:
            say: "{{ name }}, {{ n }}."
            hangup:
        """,
    )
    library = FlowLibrary(tmp_path, "main", "UTC")
    first = library.new_dialogue(DialogueContext(call_id="c", variables={}))
    [x async for x in first.start()]
    [x async for x in first.handle(UserInput("speech", "seven"))]
    snapshot = json.loads(json.dumps(first.snapshot()))  # as stored by a session store

    resumed = library.restore_dialogue(DialogueContext(call_id="c2", variables={}), snapshot)
    assert [x.text async for x in resumed.start() if isinstance(x, Say)] == ["Your name?"]
    outs = [x async for x in resumed.handle(UserInput("speech", "Ada"))]
    assert [x.text for x in outs if isinstance(x, Say)] == ["Ada, 7."]
