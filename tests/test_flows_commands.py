"""`voicebot test`, `voicebot chat` and `voicebot schema`, and the schema's agreement with the
loader."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from voicebot.flows import commands, load_flows
from voicebot.flows.schema import json_schema

from .flows_helpers import write

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "flows").glob("*.yaml"))


def test_example_conversation_tests_pass() -> None:
    out = io.StringIO()
    code = commands.test_main([str(ROOT / "flows" / "tests")], None, stdout=out)
    assert code == 0, out.getvalue()
    assert out.getvalue().endswith(" passed, 0 failed\n") and "FAIL" not in out.getvalue()


def test_a_failing_conversation_test_shows_a_diff_and_fails(tmp_path: Path) -> None:
    write(
        tmp_path,
        main="""
        slots:
          n: {type: integer, prompt: How many?}
        nodes:
          a:
            ask: n
            next: b
          b:
            say: "{{ n }} it is."
            hangup:
    """,
    )
    tests = tmp_path / "tests"
    write(
        tests,
        t="""
        tests:
          - name: passes
            steps:
              - user: three
                bot: 3 it is.
                slots: {n: 3}
                hangup: true
          - name: fails
            steps:
              - bot: {contains: "How many"}
              - user: four
                bot: 5 it is.
          - name: wrong slot
            steps:
              - user: four
                slots: {n: 5}
    """,
    )
    out = io.StringIO()
    assert commands.test_main([str(tests)], None, stdout=out) == 1
    text = out.getvalue()
    assert f"ok   {tests}/t.yaml: passes" in text
    assert f"FAIL {tests}/t.yaml: fails\n  step 2: bot said something else" in text
    assert "    - 5 it is.\n" in text and "    + 4 it is.\n" in text
    assert "    user: four\n    bot: 4 it is. [hangup completed]   (main.b)" in text
    assert "step 1: slot n should be 5, is 4" in text
    assert text.endswith("1 passed, 2 failed\n")


def test_test_command_reports_broken_flows_and_bad_files(tmp_path: Path) -> None:
    write(tmp_path, main="nodes:\n  a:\n    say: Hi\n")
    write(tmp_path / "tests", t="tests:\n  - steps: []\n", bad="just: text\n")
    out = io.StringIO()
    assert commands.test_main([str(tmp_path / "tests")], None, stdout=out) == 1
    text = out.getvalue()
    assert f"ERROR {tmp_path}/tests/bad.yaml:1:1: a test file needs `tests:`" in text
    assert "node 'a' has no way out" in text


def test_test_command_with_a_config_file(tmp_path: Path) -> None:
    write(
        tmp_path / "bot",
        main="""
        intents:
          hi: {keywords: [hello]}
        nodes:
          a:
            say: Say hello.
            listen:
              - intent: hi
                goto: b
          b:
            say: It is {{ now[11:16] }} in {{ call.city }}.
            hangup:
    """,
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent("""
        flows: {dir: bot, start: main, timezone: "Asia/Tokyo"}
        providers:
          intent: {use: keyword, threshold: 0.9}
    """)
    )
    write(
        tmp_path / "bot" / "tests",
        t="""
        now: 2026-11-21T10:00:00+00:00
        variables: {city: Tokyo}
        tests:
          - name: local time
            steps:
              - user: hello there
                intent: hi
                bot: It is 19:00 in Tokyo.
          - name: threshold from config
            steps:
              - user: hallo
                bot: {contains: "Sorry"}
    """,
    )
    out = io.StringIO()
    code = commands.test_main([], str(config), stdout=out)
    assert code == 0, out.getvalue()


def test_chat_shows_transitions_slots_and_intents(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the chat uses ./flows without a config
    stdin = io.StringIO("hello\n/dtmf 1\nthree\ntomorrow at 8pm\nAda\nyes\n\n/slots\nno\n")
    out = io.StringIO()
    # the clock is pinned to a Saturday: "tomorrow" is Sunday on whatever day the suite runs
    now = "2026-11-21T10:00:00+00:00"
    assert commands.chat_main(None, None, now=now, stdin=stdin, stdout=out) == 0
    text = out.getvalue()
    assert "bot> Welcome to Luigi's.\n  → main.menu (listen)\nbot> Would you like" in text
    assert "bot> Sorry, I didn't catch that." in text
    assert "  → booking.details (ask)\n" in text
    assert '  slots: {"party_size": 3}\n' in text
    assert "bot> So that's a table for 3 on Sunday, November 22nd at 8 pm" in text
    assert "bot> Sorry, I didn't hear anything. Can I help you with anything else?" in text
    assert '"name": "Ada"' in text
    assert "  [hangup: completed]\n" in text


def test_chat_without_a_config_file_uses_the_flows_here(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the chat uses ./flows without a config
    out = io.StringIO()
    missing = str(tmp_path / "config.yaml")
    assert commands.chat_main(missing, None, stdin=io.StringIO("/quit\n"), stdout=out) == 0
    assert out.getvalue().startswith(f"note: {missing} not found: using ./flows and keyword")
    assert "bot> Welcome to Luigi's." in out.getvalue()


def test_chat_reports_unknown_flow(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the chat uses ./flows without a config
    out = io.StringIO()
    assert commands.chat_main(None, "nope", stdin=io.StringIO(), stdout=out) == 2
    assert out.getvalue() == "error: no flow named 'nope'; flows: booking, main, support\n"


def test_schema_command_prints_the_packaged_schema_which_matches_the_spec() -> None:
    out = io.StringIO()
    assert commands.schema_main(out) == 0
    assert json.loads(out.getvalue()) == json_schema(), (
        "voicebot/flows/schema.json is stale: regenerate it with "
        "python -c 'import json; from voicebot.flows.schema import json_schema; "
        "print(json.dumps(json_schema(), indent=2))' > voicebot/flows/schema.json"
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_against_the_schema(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), json_schema())


@pytest.mark.parametrize(
    "text",
    [
        "nodes:\n  a:\n    say: Hi\n    nxt: b\n",  # unknown key
        "nodes:\n  a:\n    ask: x\n    listen: []\n",  # two kinds
        "nodes:\n  a:\n    if: x\n    then: b\n",  # missing else
        "nodes:\n  a:\n    transfer: x\n    mode: lukewarm\n",  # bad enum
        "slots:\n  s: {prompt: x}\nnodes:\n  a:\n    hangup:\n",  # slot without type
    ],
)
def test_schema_and_loader_reject_the_same_mistakes(tmp_path: Path, text: str) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(text), json_schema())
    (tmp_path / "main.yaml").write_text(text)
    with pytest.raises(Exception, match="problem"):
        load_flows(tmp_path)


def test_chat_and_test_report_a_broken_config(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("flows: {dir: flows}\nproviders:\n  intent: {use: keywrd}\n")
    out = io.StringIO()
    assert commands.chat_main(str(config), None, stdin=io.StringIO(), stdout=out) == 2
    assert "unknown provider 'keywrd' (did you mean 'keyword'?)" in out.getvalue()
    out = io.StringIO()
    assert commands.test_main([], str(config), stdout=out) == 2
    assert "unknown provider 'keywrd'" in out.getvalue()


def test_chat_and_test_build_providers_as_run_does_with_fallback_chains(tmp_path: Path) -> None:
    """The flows CLI gets its providers from the runtime's builder: an llm list is a fallback
    chain there too, not just its first member."""
    write(
        tmp_path / "bot",
        main="""
        nodes:
          a:
            say: Hi.
            llm:
              system: Be brief.
            on_error: sorry
          sorry:
            say: Let me get a colleague.
            hangup:
    """,
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent("""
        flows: {dir: bot, start: main}
        plugins: [tests.broken_llm]
        providers:
          llm: [broken, {use: stub, reply: "The second one answers."}]
    """)
    )
    write(
        tmp_path / "bot" / "tests",
        t="""
        tests:
          - name: the chain falls back
            steps:
              - user: hello
                bot: {contains: "The second one answers."}
    """,
    )
    out = io.StringIO()
    assert commands.test_main([], str(config), stdout=out) == 0, out.getvalue()
    out = io.StringIO()
    assert commands.chat_main(str(config), None, stdin=io.StringIO("hello\n"), stdout=out) == 0
    assert "bot> The second one answers.\n" in out.getvalue()
    assert "colleague" not in out.getvalue()
