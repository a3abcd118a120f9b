"""The `http` node: call a webhook with a hard timeout and read its JSON answer.

A slow webhook must not hold a caller in silence indefinitely, so every request has a total
timeout (default 5 s) and any failure (timeout, HTTP error status, non-JSON body) becomes one
`HttpError` that the runner turns into the node's `on_error` path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp


class HttpError(Exception):
    pass


async def request(spec: dict[str, Any], evaluate: Callable[[Any], Any]) -> Any:
    url = evaluate(spec["url"])
    method = spec["method"]
    headers = {k: str(v) for k, v in evaluate(spec["headers"]).items()}
    query = {k: str(v) for k, v in evaluate(spec["query"]).items()}
    body = evaluate(spec["json"]) if spec["json"] is not None else None
    timeout = aiohttp.ClientTimeout(total=spec["timeout_ms"] / 1000)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, url, headers=headers, params=query, json=body) as resp,
        ):
            text = await resp.text()
            if resp.status >= 400:
                raise HttpError(f"{method} {url} answered HTTP {resp.status}: {text[:200]}")
    except TimeoutError as exc:
        raise HttpError(f"{method} {url} timed out after {spec['timeout_ms']} ms") from exc
    except (aiohttp.ClientError, ValueError) as exc:
        raise HttpError(f"{method} {url} failed: {type(exc).__name__}: {exc}") from exc
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise HttpError(f"{method} {url} did not answer JSON: {text[:200]!r}") from exc


def pick(answer: Any, path: str) -> Any:
    """`data.items.0.id` → answer["data"]["items"][0]["id"]; None where the path breaks."""
    value = answer
    for part in path.split(".") if path else []:
        if isinstance(value, dict):
            value = value.get(part)
        elif (
            isinstance(value, list)
            and part.lstrip("-").isdigit()
            and -len(value) <= int(part) < len(value)
        ):
            value = value[int(part)]
        else:
            return None
    return value
