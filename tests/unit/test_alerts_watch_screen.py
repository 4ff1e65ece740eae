"""`hub alerts watch`'s screen, rendered from a board without a broker: the escalations queue and
the clock's SLA alerts (level, who they went to) next to the other queues' alerts."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

from rich.console import Console

from hub.commands.alerts import Screen, render, sla_text
from hub.core.topics import Queue
from hub.ops.alert_stream import AlertBoard, SeenAlert
from hub.ops.tasks import OverdueCount
from schemas.outbound import Alert, AlertSource, EscalationTarget, TimerSource

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _alert(alert_id: str, kind: str, severity: str, minutes: int, **sla) -> Alert:
    at = NOW - timedelta(minutes=minutes)
    source = (
        TimerSource(timer=kind, due_at=at)
        if kind.startswith("sla_")
        else AlertSource(topic="shipment.events", partition=0, offset=minutes, event_id=alert_id)
    )
    return Alert(
        alert_id=alert_id,
        kind=kind,
        severity=severity,
        rule=kind,
        shipment_id="SH-1",
        customer_id="C-1",
        summary=f"{kind} {alert_id}",
        task_id=f"task-{alert_id}",
        source=source,
        created_at=at,
        due_at=at + timedelta(hours=1),
        **sla,
    )


def _screen_text(screen: Screen, width: int = 140) -> str:
    console = Console(record=True, file=io.StringIO(), width=width)
    console.print(render(screen))
    return console.export_text()


def _rows(text: str, title: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if title in line)
    rows = []
    for line in lines[start + 1 :]:
        if line.lstrip().startswith("└"):
            break
        cells = [c.strip() for c in line.replace("┃", "│").split("│")[1:-1]]
        if cells:
            rows.append(cells)
    return rows


BREACH_L2 = _alert("b2", "sla_breach", "P1", 1, level=2, escalated_to=EscalationTarget.MANAGER)
BREACH_L1 = _alert("b1", "sla_breach", "P2", 2, level=1, escalated_to=EscalationTarget.SUPERVISOR)
WARNING = _alert("w", "sla_warning", "P3", 3)
DAMAGE = _alert("d", "damage", "P1", 4)


def test_sla_text_names_the_level_and_who_it_went_to():
    assert sla_text(BREACH_L2).plain == "breach L2 → manager"
    assert sla_text(BREACH_L1).plain == "breach L1 → supervisor"
    assert sla_text(WARNING).plain == "warning"
    assert sla_text(DAMAGE).plain == ""


def test_escalations_show_their_level_beside_other_queues_and_overdue_tasks_still_show():
    board = AlertBoard()
    board.add(
        [
            SeenAlert(Queue.ESCALATIONS.value, BREACH_L2),
            SeenAlert(Queue.ESCALATIONS.value, BREACH_L1),
            SeenAlert(Queue.ESCALATIONS.value, WARNING),
            SeenAlert(Queue.EXCEPTIONS.value, DAMAGE),
        ]
    )
    overdue = [OverdueCount("claims", 3, NOW - timedelta(hours=5))]
    text = _screen_text(Screen(board, overdue, at=NOW))

    header, *counts = _rows(text, "Alerts per queue and severity")
    by_queue = {cells[0]: dict(zip(header[1:], cells[1:], strict=True)) for cells in counts}
    assert list(by_queue) == [q.value for q in Queue]
    assert by_queue["escalations"] == {"P1": "1", "P2": "1", "P3": "1", "P4": "0", "total": "3"}

    header, *newest = _rows(text, "Newest alerts")
    assert header == ["created", "sev", "queue", "summary", "due"]
    assert [cells[3] for cells in newest] == [
        "breach L2 → manager: sla_breach b2",
        "breach L1 → supervisor: sla_breach b1",
        "warning: sla_warning w",
        "damage d",
    ]

    assert _rows(text, "Overdue tasks")[1:] == [["claims", "3", "11-27 04:00 (5h 0m overdue)"]]


def test_the_screen_fits_80_columns_with_sla_alerts_on_it():
    board = AlertBoard()
    board.add([SeenAlert(Queue.ESCALATIONS.value, BREACH_L2), SeenAlert(Queue.URGENT_ORDERS.value, DAMAGE)])
    text = _screen_text(Screen(board, [], at=NOW), width=80)
    header, *rows = _rows(text, "Newest alerts")
    assert header[-1] == "due" and all(re.fullmatch(r"(\d\d-\d\d \d\d:\d\d)?", cells[-1]) for cells in rows)
    assert "breach L2 →" in text and "no overdue tasks" in text
