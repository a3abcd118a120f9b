"""Sandboxed Jinja2 templates and expressions, compiled once when a flow loads.

Flow files come from bot builders, not from us: the sandbox keeps a template from reaching Python
internals, and StrictUndefined turns a typo into an error instead of silent empty speech. A string
that is exactly one `{{ expression }}` evaluates to the expression's own value (an integer stays an
integer in `set:` and action arguments); anything else renders to text.
"""

from __future__ import annotations

import functools
import re
from datetime import date, datetime, time
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

_PURE = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.S)


class TemplateError(Exception):
    pass


def _parse_iso(value: Any) -> datetime | date | time | None:
    if isinstance(value, datetime | date | time):
        return value
    text = str(value)
    for parser in (datetime.fromisoformat, date.fromisoformat, time.fromisoformat):
        try:
            return parser(text)
        except ValueError:
            continue
    return None


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def spoken_time(value: Any) -> str:
    t = _parse_iso(value)
    if isinstance(t, datetime):
        t = t.time()
    if not isinstance(t, time):
        return str(value)
    if t.hour == 12 and t.minute == 0:
        return "noon"
    if t.hour == 0 and t.minute == 0:
        return "midnight"
    hour = t.hour % 12 or 12
    half = "am" if t.hour < 12 else "pm"
    return f"{hour} {half}" if t.minute == 0 else f"{hour}:{t.minute:02d} {half}"


def spoken_date(value: Any) -> str:
    d = _parse_iso(value)
    if isinstance(d, datetime):
        d = d.date()
    if not isinstance(d, date):
        return str(value)
    return f"{d.strftime('%A')}, {d.strftime('%B')} {_ordinal(d.day)}"


def spoken_datetime(value: Any) -> str:
    dt = _parse_iso(value)
    if not isinstance(dt, datetime):
        return spoken_date(value) if isinstance(dt, date) else spoken_time(value)
    return f"{spoken_date(dt)} at {spoken_time(dt)}"


def spoken_digits(value: Any) -> str:
    """'0172' → '0 1 7 2', so TTS reads a code digit by digit instead of as a number."""
    return " ".join(str(value).replace(" ", ""))


ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
ENV.filters.update(
    spoken_date=spoken_date,
    spoken_time=spoken_time,
    spoken_datetime=spoken_datetime,
    spoken_digits=spoken_digits,
)


class Template:
    """A compiled template. `names` are the variables it reads; `static` ones render once."""

    __slots__ = ("_expr", "_tmpl", "names", "source", "static")

    def __init__(self, source: str) -> None:
        self.source = source
        self._expr = None
        self._tmpl = None
        self.static = not any(mark in source for mark in ("{{", "{%", "{#"))
        if self.static:  # most prompts: nothing to compile
            self.names: frozenset[str] = frozenset()
            return
        try:
            pure = _PURE.match(source)
            if pure and "{{" not in pure.group(1) and "}}" not in pure.group(1):
                body = pure.group(1)
                ast = ENV.parse("{{" + body + "}}")
                self._expr = ENV.compile_expression(body, undefined_to_none=False)
            else:
                ast = ENV.parse(source)
                self._tmpl = ENV.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template error: {exc.message}") from exc
        self.names = frozenset(meta.find_undeclared_variables(ast))

    def value(self, scope: dict[str, Any]) -> Any:
        """The expression's value for a pure `{{ x }}`, else the rendered text."""
        if self.static:
            return self.source
        try:
            if self._expr is not None:
                return self._expr(**scope)
            return self._tmpl.render(scope)  # type: ignore[union-attr]
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"{exc.message} in {self.source!r}") from exc
        except Exception as exc:  # sandbox violations, type errors in the user's expression
            raise TemplateError(f"{type(exc).__name__}: {exc} in {self.source!r}") from exc

    def render(self, scope: dict[str, Any]) -> str:
        if self.static:
            return self.source
        value = self.value(scope)
        return "" if value is None else str(value)


class Expression:
    """A bare expression such as `party_size > 8` (conditions, `switch`, slot `check`)."""

    __slots__ = ("_fn", "names", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            ast = ENV.parse("{{ " + source + " }}")
            self._fn = ENV.compile_expression(source, undefined_to_none=False)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"expression error: {exc.message}") from exc
        self.names = frozenset(meta.find_undeclared_variables(ast))

    def __call__(self, scope: dict[str, Any]) -> Any:
        try:
            return self._fn(**scope)
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"{exc.message} in {self.source!r}") from exc
        except Exception as exc:
            raise TemplateError(f"{type(exc).__name__}: {exc} in {self.source!r}") from exc


@functools.lru_cache(maxsize=8192)
def template(source: str) -> Template:
    """A compiled template, shared: reloading a flow recompiles only the text that changed."""
    return Template(source)


@functools.lru_cache(maxsize=4096)
def expression(source: str) -> Expression:
    return Expression(source)


def compile_value(value: Any) -> Any:
    """Compile every string inside a YAML value (set:, args:, json:) into a Template."""
    if isinstance(value, str):
        return template(value)
    if isinstance(value, list):
        return [compile_value(v) for v in value]
    if isinstance(value, dict):
        return {k: compile_value(v) for k, v in value.items()}
    return value


def eval_value(value: Any, scope: dict[str, Any]) -> Any:
    if isinstance(value, Template):
        return value.value(scope)
    if isinstance(value, list):
        return [eval_value(v, scope) for v in value]
    if isinstance(value, dict):
        return {k: eval_value(v, scope) for k, v in value.items()}
    return value


def value_names(value: Any) -> frozenset[str]:
    if isinstance(value, Template):
        return value.names
    if isinstance(value, list):
        return frozenset().union(*(value_names(v) for v in value))
    if isinstance(value, dict):
        return frozenset().union(*(value_names(v) for v in value.values()))
    return frozenset()
