"""The clock's fast paths build what the plain ones did: `hub.core.outputs.trusted` the same model as
`model_construct`, the engine's task rows the same TaskState."""

from datetime import UTC, datetime

from hub.core.outputs import trusted
from schemas.enums import AlertKind, Severity
from schemas.outbound import Alert, AlertSource, TimerSource

AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _alert_values(source: TimerSource | AlertSource) -> dict:
    return {
        "alert_id": "3f0fe577-6c78-57ec-9bce-7cbe937ad95c",
        "kind": AlertKind.SLA_BREACH,
        "severity": Severity.P1,
        "rule": "sla_breach",
        "shipment_id": "SF1400123456790",
        "customer_id": None,
        "summary": "claims task breached",
        "task_id": "931481cf-9070-501f-9675-ead0de61f9be",
        "source": source,
        "created_at": AT,
        "due_at": AT,
        "level": 1,
        "escalated_to": None,
    }


def _same(a, b) -> None:
    assert type(a) is type(b)
    assert a.__dict__ == b.__dict__ and list(a.__dict__) == list(b.__dict__)
    assert a.model_fields_set == b.model_fields_set
    assert a.__pydantic_extra__ == b.__pydantic_extra__ and a.__pydantic_private__ == b.__pydantic_private__
    assert a.model_dump_json() == b.model_dump_json()
    assert a == b


def test_every_field_given_is_model_construct() -> None:
    source = trusted(TimerSource, timer="sla_breach", due_at=AT)
    _same(source, TimerSource(timer="sla_breach", due_at=AT))
    _same(trusted(Alert, **_alert_values(source)), Alert.model_construct(**_alert_values(source)))


def test_fields_left_out_fall_back_to_model_construct() -> None:
    source = AlertSource(topic="shipment.events", partition=1, offset=2, event_id="e")
    values = {k: v for k, v in _alert_values(source).items() if k not in ("level", "escalated_to")}
    _same(trusted(Alert, **values), Alert.model_construct(**values))


def test_raised_severity() -> None:
    assert [s.raised() for s in Severity] == [Severity.P1, Severity.P1, Severity.P2, Severity.P3]
    assert Severity.P4.raised(2) is Severity.P2 and Severity.P2.raised(0) is Severity.P2


def test_task_rows_are_task_states_in_order() -> None:
    """hub.clock.engine._tasks builds TaskState positionally from SELECT_TASKS_FOR_UPDATE's columns."""
    from hub.clock import queries
    from hub.core.clock import TaskState

    columns = queries.SELECT_TASKS_FOR_UPDATE.split("SELECT", 1)[1].split("FROM", 1)[0].replace("::text", "")
    assert [c.strip() for c in columns.split(",")] == list(TaskState._fields)
