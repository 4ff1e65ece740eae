"""JSON Schema documents of the contract's models, for carriers and warehouse integrators.

Knows models, not topics: consumers/spec.py names each document after its topic and adds the
AsyncAPI document; `hub schema export DIR` writes them all, and a test fails when the committed
copies under `schemas/json/` are out of date.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

COMMITTED_DIR = Path(__file__).with_name("json")


def json_schema(name: str, model: type[BaseModel], mode: Literal["validation", "serialization"]) -> dict[str, Any]:
    """`model`'s JSON Schema as the document `name`.schema.json (validation mode for what the hub reads)."""
    schema = model.model_json_schema(mode=mode)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{name}.schema.json",
        "description": (model.__doc__ or "").strip().splitlines()[0],
        **schema,
    }


def dump(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
