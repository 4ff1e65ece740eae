"""JSON Schemas per topic and the AsyncAPI document, for carriers and warehouse integrators.

`hub schema export DIR` writes them; a test fails when the committed copies under
`schemas/json/` are out of date.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from hub.config import Settings
from schemas.inbound import CallLog, CarrierUpdate, ShipmentEvent
from schemas.outbound import Alert, DeadLetterHeaders

COMMITTED_DIR = Path(__file__).with_name("json")


def topic_models(settings: Settings | None = None) -> dict[str, type[BaseModel]]:
    s = settings or Settings.model_construct()
    return {
        s.topic_shipment_events: ShipmentEvent,
        s.topic_call_logs: CallLog,
        s.topic_carrier_updates: CarrierUpdate,
        s.topic_alerts_exceptions: Alert,
        s.topic_alerts_urgent: Alert,
        s.topic_alerts_complaints: Alert,
        f"{s.topic_dead_letter}.headers": DeadLetterHeaders,
    }


def json_schemas() -> dict[str, dict[str, Any]]:
    out = {}
    for topic, model in topic_models().items():
        mode = "validation" if model in (ShipmentEvent, CallLog, CarrierUpdate) else "serialization"
        schema = model.model_json_schema(mode=mode)
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{topic}.schema.json",
                  "description": (model.__doc__ or "").strip().splitlines()[0], **schema}
        out[f"{topic}.schema.json"] = schema
    return out


def asyncapi_document() -> dict[str, Any]:
    from consumers.spec import contract_specification

    return contract_specification().to_specification().to_jsonable()


def render_all() -> dict[str, str]:
    files = {name: _dump(schema) for name, schema in json_schemas().items()}
    files["asyncapi.json"] = _dump(asyncapi_document())
    return files


def _dump(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
