"""docs/contract.md, the integrators' guide, is checked against the code: it names every topic,
enumerated value, dead-letter reason and header, field, clock timer, task-history action and
default rule, and its routing table is the shipped rules file."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

import pytest

import schemas.enums
from consumers.spec import json_schemas
from hub.config import Settings
from hub.core.clock import Timer
from hub.core.rules import load_rules
from hub.core.topics import QUEUES, STREAMS
from schemas.enums import DeadLetterReason
from schemas.inbound import ExceptionInfo, Location, Money, ProofOfDelivery
from schemas.outbound import Alert, AlertSource, EscalationTarget, TimerSource

ROOT = Path(__file__).parents[1]
CONTRACT = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
DEFAULTS = Settings.model_construct()
RULES = load_rules()
INBOUND = {DEFAULTS.topic(s.topic_setting): s.model for s in STREAMS}
QUEUE_TOPICS = {DEFAULTS.topic(q.topic_setting): q for q in QUEUES}
HEADERS = json_schemas()[f"{DEFAULTS.dead_letter_topic}.headers.schema.json"]["properties"]


def _named(value: str) -> bool:
    return f"`{value}`" in CONTRACT


def test_the_contract_names_every_topic():
    topics = [*INBOUND, *QUEUE_TOPICS, DEFAULTS.dead_letter_topic]
    assert [t for t in topics if not _named(t)] == []
    for topic in topics:
        assert re.search(rf"^\| `{re.escape(topic)}` \|", CONTRACT, re.M), f"{topic} has no row in the topics table"


def _enums() -> list[type[StrEnum]]:
    found = [v for v in vars(schemas.enums).values() if isinstance(v, type) and issubclass(v, StrEnum)]
    return [e for e in found if e is not StrEnum] + [EscalationTarget, Timer]


@pytest.mark.parametrize("enum", _enums(), ids=lambda e: e.__name__)
def test_the_contract_names_every_value_of(enum: type[StrEnum]):
    assert [m.value for m in enum if not _named(m.value)] == []


def test_the_contract_explains_every_dead_letter_reason_and_header():
    for reason in DeadLetterReason:
        assert re.search(rf"^\| `{reason.value}` \| \S", CONTRACT, re.M), f"no row for {reason.value}"
    for header in HEADERS:
        assert _named(header), header


def test_the_contract_names_every_field():
    models = [*INBOUND.values(), ExceptionInfo, Location, Money, ProofOfDelivery, Alert, AlertSource, TimerSource]
    listed = {name.strip() for group in re.findall(r"`\{([^}`]*)\}`", CONTRACT) for name in group.split(",")}
    fields = {name for model in models for name in model.model_fields}
    assert sorted(f for f in fields if not _named(f) and f not in listed) == []


def test_the_contracts_routing_table_is_the_shipped_rules_file():
    for rule in RULES.rules:
        row = re.search(rf"^\| `{re.escape(rule.id)}` \|.*$", CONTRACT, re.M)
        assert row, f"rule {rule.id} has no row in the routing table"
        cells = row.group(0).split(" | ")
        queue_topic = DEFAULTS.topic(next(q.topic_setting for q in QUEUES if q.queue is rule.queue))
        assert f"`{queue_topic}`" == cells[2], (rule.id, cells)
        assert f"`{rule.kind.value}`" == cells[3], (rule.id, cells)
        assert cells[4].startswith(f"`{rule.task.department.value}`, `{rule.task.severity.value}`"), (rule.id, cells)
        assert (f"`{rule.notify.value}`" if rule.notify else "none") in cells[5], (rule.id, cells)


def test_the_contract_names_the_clock_and_task_history_vocabulary():
    migration = (ROOT / "deploy" / "migrations" / "0005_clock_and_task_lifecycle.sql").read_text()
    actions = re.search(r"action\s+text NOT NULL CHECK \(action IN \(([^)]*)\)\)", migration, re.S)
    assert actions
    names = re.findall(r"'(\w+)'", actions.group(1))
    assert len(names) >= 10 and [a for a in names if not _named(a)] == []
    hours = {s.value: h for s, h in RULES.clock.stale_after_hours.items()}
    for status, h in hours.items():
        row = re.search(rf"(\d+) h \([^)]*`{status}`", CONTRACT)
        assert row and float(row.group(1)) == h, f"stale_shipment threshold of {status}"


def test_rules_file_and_schemas_point_to_the_contract_in_the_repository():
    header = (ROOT / "hub" / "core" / "rules.yaml").read_text().split("\n\n", 1)[0]
    assert "docs/contract.md" in header
    for path in [ROOT / "schemas" / "__init__.py", *(ROOT / "schemas").glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        assert "shared/spec" not in text and "CONTRACT.md" not in text, path
    assert "docs/contract.md" in (ROOT / "schemas" / "__init__.py").read_text()


def test_the_contracts_links_resolve():
    for target in re.findall(r"\]\(([^)#]+)\)", CONTRACT):
        assert (ROOT / "docs" / target).resolve().exists(), target
