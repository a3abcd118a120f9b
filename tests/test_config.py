"""config.yaml: interpolation and errors that name file, line, key and the fix."""

from __future__ import annotations

import pytest

from voicebot.config import load_config
from voicebot.config.options import ConfigError


def write(tmp_path, text: str):
    p = tmp_path / "config.yaml"
    p.write_text(text)
    return p


def test_env_interpolation_with_defaults(tmp_path):
    p = write(tmp_path, 'server:\n  port: "${PORT:-9000}"\n  public_url: "${URL}"\n')
    cfg = load_config(p, env={"URL": "https://bot.example.com"})
    assert cfg.server.port == 9000 and cfg.server.public_url == "https://bot.example.com"
    assert load_config(p, env={"URL": "x", "PORT": "7000"}).server.port == 7000


def test_missing_env_var_says_how_to_fix(tmp_path):
    p = write(tmp_path, "server:\n  host: 0.0.0.0\n  public_url: ${PUBLIC_URL}\n")
    with pytest.raises(ConfigError) as err:
        load_config(p, env={})
    assert str(err.value) == (
        f"{p}:3: server.public_url: environment variable PUBLIC_URL is not set; export it, or "
        "write ${PUBLIC_URL:-default} to give a default"
    )


def test_all_problems_reported_at_once_with_lines(tmp_path):
    p = write(
        tmp_path,
        "server:\n  prot: 1\npipeline:\n  sample_rate: 100\n  frame_ms: 25\nflow: {}\n"
        "providers:\n  ttx: {use: a}\n  stt: {}\n",
    )
    with pytest.raises(ConfigError) as err:
        load_config(p, env={})
    lines = str(err.value).splitlines()
    assert (
        f"{p}:2: server.prot: unknown key (did you mean 'port'?); "
        "allowed: host, port, public_url, drain_grace_s, malloc_trim_s, otel_traces" in lines
    )
    assert f"{p}:4: pipeline.sample_rate: 100 is out of range (8000..48000)" in lines
    assert f"{p}:5: pipeline.frame_ms: 25 is not one of 10, 20, 30" in lines
    assert any(
        line.startswith(f"{p}:6: flow: unknown section (did you mean 'flows'?)") for line in lines
    )
    assert any(
        line.startswith(f"{p}:8: providers.ttx: unknown role (did you mean 'tts'?)")
        for line in lines
    )
    assert f"{p}:9: providers.stt.use: missing: name the provider, e.g. `use: webrtc`" in lines


def test_yaml_syntax_error_has_a_line(tmp_path):
    p = write(tmp_path, "server:\n  port: [1, 2\n")
    with pytest.raises(ConfigError) as err:
        load_config(p, env={})
    assert str(err.value).startswith(f"{p}:3: invalid YAML") or str(err.value).startswith(
        f"{p}:2: invalid YAML"
    )


def test_fallback_chain_is_a_list(tmp_path):
    p = write(tmp_path, "providers:\n  stt: [stub, {use: other, x: 1}]\n")
    cfg = load_config(p, env={})
    assert [s.use for s in cfg.chains["stt"]] == ["stub", "other"]


INDENT = "check the indentation of this line and the one above; use spaces, not tabs"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server:\n  host: 127.0.0.1\n port: 8080\n", f"3: invalid YAML: {INDENT}"),
        ("plugins:\n  - a\n - b\n", f"3: invalid YAML: {INDENT}"),
        (
            "server:\n  host: 127.0.0.1\n   port: 8080\n",
            f"3: invalid YAML: unexpected `key:` here: {INDENT}. A value that contains ': ' "
            "needs quotes",
        ),
        ("server:\n\thost: x\n", "2: invalid YAML: a tab character: indent with spaces, not tabs"),
        (
            "server:\n  host: x\nport 8080\n  y: 1\n",
            f"3: invalid YAML: this line is not `key: value` (is the ':' missing?), or {INDENT}",
        ),
        (
            "providers:\n  vad: {use: webrtc\n  stt: stub\n",
            "3: invalid YAML: the { opened on line 2 is not closed with } where expected (or its "
            "items are not separated by commas)",
        ),
        (
            'dialogue:\n  greeting: "Hello\n',
            "2: invalid YAML: a quote opened on this line is never closed",
        ),
    ],
)
def test_yaml_mistakes_are_explained_in_plain_words(tmp_path, text, expected):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(p, env={})
    assert str(err.value) == f"{p}:{expected}"
