"""`http:`: a JSON web request whose answer (or parts of it, `map:`) become variables."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...dialogue import BotOutput, Note
from .. import http as http_client
from ..model import Node, StepError
from ..source import Path_
from ..spec import ERRORS, NAME, REF, TEXT, T, anything, i, mp, obj, s
from .base import NodeKind, say_first

if TYPE_CHECKING:
    from ..builder import Builder
    from ..runner import FlowDialogue

REQUEST = obj(
    "An HTTP request",
    required=("url",),
    url=TEXT,
    method=T("str", "HTTP method", enum=("GET", "POST", "PUT", "PATCH", "DELETE")),
    headers=mp(TEXT),
    query=mp(anything()),
    json=anything("Request body; strings are templates"),
    timeout_ms=i("Request timeout in milliseconds (default 5000)", minimum=1),
)


@dataclass
class Request:
    request: dict[str, Any]
    mapping: dict[str, str] = field(default_factory=dict)
    result: str | None = None


class Http(NodeKind):
    name = "http"
    fields = {
        "http": REQUEST,
        "map": mp(s("Dotted path into the JSON answer, e.g. data.items.0.id")),
        "result": s("Variable receiving the whole JSON answer", pattern=NAME),
        "next": REF,
        **ERRORS,
    }
    needs_next = True
    uses_defaults = True

    def build(self, b: Builder, node: Node, data: dict[str, Any], path: Path_) -> None:
        http = data["http"]
        request = {
            "url": b.template(http["url"], (*path, "http", "url")),
            "method": http.get("method", "GET"),
            "headers": b.values(http.get("headers") or {}, (*path, "http", "headers")),
            "query": b.values(http.get("query") or {}, (*path, "http", "query")),
            "json": b.values(http.get("json"), (*path, "http", "json")),
            "timeout_ms": http.get("timeout_ms", 5000),
        }
        node.part = Request(request, dict(data.get("map") or {}), data.get("result"))

    def assigns(self, node: Node) -> Iterable[str]:
        part: Request = node.part
        return [*part.mapping, *([part.result] if part.result else [])]

    async def enter(self, d: FlowDialogue, node: Node) -> AsyncIterator[BotOutput]:
        async for out in say_first(d, node):
            yield out
        part: Request = node.part
        try:
            answer = await http_client.request(part.request, d._eval)
        except http_client.HttpError as exc:
            raise StepError(str(exc)) from exc
        changed: dict[str, Any] = {}
        if part.result:
            changed[part.result] = answer
        for name, path in part.mapping.items():
            changed[name] = http_client.pick(answer, path)
        d.values.update(changed)
        yield Note("vars", {"vars": changed})
        d._go(node.next)


HTTP = Http()
