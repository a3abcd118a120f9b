"""The JSON Schema of flow files, for editors: the shared keys from `spec`, one `anyOf` entry per
registered node kind. `schema.json` (what `voicebot schema` prints) is this, committed; a test
keeps the two equal."""

from __future__ import annotations

from typing import Any

from .nodes import NodeKind, kind_keys, kinds
from .spec import COMMON, FLOW, to_schema


def node_schema(kind: NodeKind) -> dict[str, Any]:
    fields = {**COMMON, **kind.fields}
    required = ["say"] if kind.name == "say" else [kind.name, *kind.required]
    return {
        "title": f"{kind.name} node",
        "type": "object",
        "properties": {name: to_schema(f) for name, f in fields.items()},
        "required": required,
        "additionalProperties": False,
    }


def json_schema() -> dict[str, Any]:
    schema = to_schema(FLOW)
    schema["properties"]["nodes"]["additionalProperties"] = {
        "description": "A node: `say:` and/or exactly one of " + ", ".join(kind_keys()),
        "anyOf": [node_schema(kind) for kind in kinds().values()],
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://voicebot.dev/schema/flow.json",
        "title": "voicebot flow",
        **schema,
    }
