"""JSON Schema documents of the contract's models, for carriers and warehouse integrators.

Knows models, not topics: consumers/spec.py names each document after its topic and adds the
AsyncAPI document; `hub schema export DIR` writes them all, and a test fails when the committed
copies under `schemas/json/` are out of date. Everything in a document comes from the models
(field descriptions, examples, cross-field rules in `json_schema_extra`): one source of truth.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

COMMITTED_DIR = Path(__file__).with_name("json")
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema(name: str, model: type[BaseModel], mode: Literal["validation", "serialization"]) -> dict[str, Any]:
    """`model`'s JSON Schema as the document `name`.schema.json (validation mode for what the hub reads,
    serialization mode for what it writes)."""
    schema = model.model_json_schema(mode=mode)
    return {"$schema": DIALECT, "$id": f"{name}.schema.json", **schema}


def dump(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
