"""The clock's and dispatch's oracles (clockcheck.py, dispatchcheck.py) without any service: a flawless
hub's state passes, and each planted anomaly is found under its own name, as correctness or liveness."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from tests.reliability.checker import Findings
from tests.reliability.clockcheck import ClockState, Fired, judge_clock, stale_source
from tests.reliability.dispatchcheck import Address, DispatchState, judge_dispatch, schedule_s
from tests.reliability.generator import WorkloadSpec, generate
from tests.reliability.oracle import (
    RETRY_SCHEDULE,
    SLA_BREACH,
    SLA_WARNING,
    STALE_SHIPMENT,
    event_task_window,
    stale_moment,
    stale_task_window,
)
from tests.reliability.peers import Receipt

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)


# --- the clock ---------------------------------------------------------------------------------------------


def _ledger():
    return generate(11, WorkloadSpec(300, incident_share=0.4, call_share=0.4, t0=NOW - 3 * timedelta(days=1)))


def _perfect_clock(ledger, end: datetime) -> tuple[ClockState, list[dict]]:
    """What a flawless clock leaves by `end`, every timer fired by one tick at its moment + 1 s."""
    tasks, firings, history, outbox = {}, {}, Counter(), []

    def task(source: str, rule: str, window) -> str:
        task_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{source}/{rule}"))
        tasks[task_id] = {
            "task_id": task_id,
            "source_event_id": source,
            "rule": rule,
            "kind": rule,
            "status": "open",
            "opened_at": window.opened,
            "due_at": window.due,
            "warn_at": window.warn,
            "escalate_at": window.level_2,
            "warned_at": None,
            "escalation_level": 0,
            "created_at": window.opened,
        }
        history[(task_id, "created", "")] += 1
        return task_id

    def fire(timer: str, subject: str, key: str, due: datetime, alert_task: str, level: int | None) -> None:
        at = due + S
        firings[(timer, subject, key)] = Fired(timer, subject, key, due, at, at)
        doc = {"alert_id": str(uuid.uuid4()), "task_id": alert_task, "source": {"timer": timer}, "level": level}
        outbox.append((doc["alert_id"], doc, True))

    def breaches(task_id: str, window) -> None:
        for key, moment in (("1", window.due), ("2", window.level_2)):
            if moment <= end:
                fire(SLA_BREACH, task_id, key, moment, task_id, int(key))
                history[(task_id, "escalated", key)] += 1
                tasks[task_id]["escalation_level"] = int(key)

    for event in ledger.events.values():
        for _queue, rule in event.expect.rules:
            window = event_task_window(event.occurred_at, rule)
            breaches(task(event.event_id, rule, window), window)
    latest: dict[str, object] = {}
    for event in ledger.events.values():
        newer = event.shipment_id not in latest or event.occurred_at > latest[event.shipment_id].occurred_at
        if event.shipment_id and event.status and newer:
            latest[event.shipment_id] = event
    stale_at = {}
    for shipment_id, event in latest.items():
        due = stale_moment(event.occurred_at, event.status)
        stale_at[shipment_id] = due
        if due is None or due > end:
            continue
        key = event.occurred_at.isoformat()
        window = stale_task_window(due)
        task_id = task(stale_source(shipment_id, key), STALE_SHIPMENT, window)
        fire(STALE_SHIPMENT, shipment_id, key, due, task_id, None)
        stale_at[shipment_id] = None
        breaches(task_id, window)
    processed = {e.event_id: e.occurred_at for e in ledger.events.values()}
    topic = [doc for _, doc, _ in outbox]
    return ClockState(firings, tasks, history, stale_at, outbox, processed), topic


def _judge(ledger, state, end, topic) -> Findings:
    f = Findings()
    judge_clock(f, ledger, state, end, topic)
    return f


def _breach(state: ClockState, level: str) -> Fired:
    return next(x for x in state.firings.values() if x.timer == SLA_BREACH and x.key == level)


def test_a_flawless_clock_passes() -> None:
    ledger = _ledger()
    state, topic = _perfect_clock(ledger, NOW)
    f = _judge(ledger, state, NOW, topic)
    assert f.violations() == [] and f.backlog() == [], f.to_json()
    assert f.firings == len(state.firings) > 100
    assert {x.timer for x in state.firings.values()} == {SLA_BREACH, STALE_SHIPMENT}


def test_a_timer_due_but_not_fired_is_unfired_while_armed_and_lost_once_disarmed() -> None:
    ledger = _ledger()
    state, topic = _perfect_clock(ledger, NOW)
    second = _breach(state, "2")
    del state.firings[second.identity]  # level 2 never fired ...
    state.tasks[second.subject]["escalation_level"] = 1  # ... and the task still waits for it
    state.history[(second.subject, "escalated", "2")] = 0
    alert = next(a for a in state.outbox if a[1]["task_id"] == second.subject and a[1]["level"] == 2)
    state.outbox.remove(alert)
    topic.remove(alert[1])
    f = _judge(ledger, state, NOW, topic)
    assert (f.unfired, f.lost_firings, f.violations()) == (1, 0, []), f.to_json()
    state.tasks[second.subject]["escalation_level"] = 2  # the task moved on without the firing
    f = _judge(ledger, state, NOW, topic)
    assert (f.unfired, f.lost_firings) == (0, 2), f.to_json()  # required, and the level has no firing


def test_effects_twice_early_firings_late_warnings_and_strays_are_found() -> None:
    ledger = _ledger()
    state, topic = _perfect_clock(ledger, NOW)
    first = _breach(state, "1")
    # the same firing's alert again, under another alert_id
    doc = dict(next(d for _, d, _ in state.outbox if d["task_id"] == first.subject and d["level"] == 1))
    doc["alert_id"] = str(uuid.uuid4())
    state.outbox.append((doc["alert_id"], doc, True))
    topic.append(doc)
    state.history[(first.subject, "escalated", "1")] += 1  # its history row twice
    f = _judge(ledger, state, NOW, topic)
    assert f.firing_effects_doubled == 2 and f.unexpected_firings == 0, f.to_json()

    state, topic = _perfect_clock(ledger, NOW)
    first = _breach(state, "1")
    state.firings[first.identity] = replace(first, recorded_at=first.due_at - S)  # recorded before due
    task = state.tasks[first.subject]
    late = Fired(SLA_WARNING, first.subject, "0", task["warn_at"], task["due_at"], task["due_at"])  # at due
    state.firings[late.identity] = late
    stale = next(x for x in state.firings.values() if x.timer == STALE_SHIPMENT)
    bogus = replace(stale, key=(datetime.fromisoformat(stale.key) + S).isoformat())  # no event has this moment
    state.firings[bogus.identity] = bogus
    f = _judge(ledger, state, NOW, topic)
    assert f.unexpected_firings >= 3, f.to_json()
    assert {"unexpected firings"} <= {v.split(":")[0] for v in f.violations()}


def test_a_later_chunk_firing_an_earlier_timer_is_out_of_due_order() -> None:
    ledger = _ledger()
    state, topic = _perfect_clock(ledger, NOW)
    stale = sorted((x for x in state.firings.values() if x.timer == STALE_SHIPMENT), key=lambda x: x.due_at)
    early, late = stale[0], stale[-1]
    tick = NOW
    # one tick, two chunks: the first fired the later-due timer, the second the earlier one
    state.firings[late.identity] = replace(late, fired_at=tick, recorded_at=tick + S)
    state.firings[early.identity] = replace(early, fired_at=tick, recorded_at=tick + 2 * S)
    f = _judge(ledger, state, NOW, topic)
    assert f.out_of_due_order == 1, f.to_json()
    state.firings[late.identity] = replace(late, fired_at=tick, recorded_at=tick + 2 * S)
    state.firings[early.identity] = replace(early, fired_at=tick, recorded_at=tick + S)
    assert _judge(ledger, state, NOW, topic).out_of_due_order == 0


# --- dispatch ------------------------------------------------------------------------------------------------

DOMAIN = "hub.example"


def _notice(nid: str, customer: str, kind: str, channel: str, status: str = "sent", shipment: str = "S1") -> dict:
    return {
        "id": nid,
        "customer_id": customer,
        "shipment_id": shipment,
        "kind": kind,
        "channel": channel,
        "status": status,
        "created_at": NOW,
        "sent_at": NOW + S if status == "sent" else None,
        "failed_at": NOW + 200 * S if status == "failed" else None,
        "attempts": 1,
    }


def _dispatch_world():
    addresses = {
        "C-MAIL": Address("email", email="c-mail@customers.example"),
        "C-HOOK": Address("webhook", path="/hooks/C-HOOK"),
        "C-SMS": Address("sms", phone="+86 1"),
        "C-DEAD": Address("webhook", path="/hooks/dead"),
    }
    notices = {
        "n1": _notice("n1", "C-MAIL", "delay", "email"),
        "n2": _notice("n2", "C-HOOK", "complaint_received", "webhook"),
        "n3": _notice("n3", "C-SMS", "claim_received", "sms"),
        "n4": _notice("n4", "C-MAIL", "dispatched", "email", "suppressed"),
        "n5": _notice("n5", "C-MAIL", "delivered", "email"),
        "n6": _notice("n6", "C-DEAD", "delay", "webhook", "failed"),
    }
    tries = len(RETRY_SCHEDULE) + 1
    attempts = {
        "n6": [
            {"outcome": "retry" if i < tries - 1 else "failed", "at": NOW + i * S, "status_code": 503}
            for i in range(tries)
        ]
    }
    receipts = [
        Receipt(
            NOW + S, "email", "c-mail@customers.example", f"n1@{DOMAIN}", to="c-mail@customers.example", answered=250
        ),
        Receipt(
            NOW + S,
            "webhook",
            "/hooks/C-HOOK",
            "n2",
            body_id="n2",
            customer_id="C-HOOK",
            kind="complaint_received",
            verified=True,
            answered=200,
        ),
        Receipt(NOW + S, "sms", "/sms", "n3", to="+86 1", answered=200),
        Receipt(
            NOW + S, "email", "c-mail@customers.example", f"n5@{DOMAIN}", to="c-mail@customers.example", answered=250
        ),
        *(
            Receipt(
                NOW + i * S,
                "webhook",
                "/hooks/dead",
                "n6",
                body_id="n6",
                customer_id="C-DEAD",
                kind="delay",
                verified=True,
                answered=503,
            )
            for i in range(tries)
        ),
    ]
    failure_task = {"task_id": "t6", "department": "call_centre", "notification_id": "n6"}
    alert = {"alert_id": "a6", "task_id": "t6", "source": {"timer": "notification_failed"}}
    state = DispatchState(notices, attempts, [failure_task], 0, [("a6", alert, True)])
    return state, receipts, addresses, [alert]


def _judge_dispatch(state, receipts, addresses, topic) -> Findings:
    f = Findings()
    judge_dispatch(
        f, state, receipts, addresses, topic, domain=DOMAIN, retry_scale=1.0 / 3600 / 1000, dead=frozenset({"C-DEAD"})
    )
    return f


def test_flawless_dispatch_passes() -> None:
    f = _judge_dispatch(*_dispatch_world())
    assert f.violations() == [] and f.backlog() == [] and f.notice_copies == 0, f.to_json()
    assert schedule_s(1.0) == 63_305.0  # 5 s + 5 min + 30 min + 2 h + 5 h + 10 h


def test_each_dispatch_anomaly_is_found() -> None:
    state, receipts, addresses, topic = _dispatch_world()
    receipts = [r for r in receipts if r.notice_id != "n3"]  # marked sent, never received
    receipts.append(receipts[0])  # a copy: counted, not a violation
    receipts.append(
        Receipt(
            NOW,
            "webhook",
            "/hooks/C-HOOK",
            "n2",
            body_id="n9",
            customer_id="C-HOOK",
            kind="complaint_received",
            verified=True,
            answered=200,
        )
    )  # another id in the body
    receipts.append(
        Receipt(
            NOW,
            "webhook",
            "/hooks/C-HOOK",
            "n2",
            body_id="n2",
            customer_id="C-HOOK",
            kind="complaint_received",
            verified=False,
            answered=200,
        )
    )  # a bad signature
    state.notices["n7"] = _notice("n7", "C-HOOK", "complaint_received", "webhook", "suppressed")  # not a milestone
    state.notices["n8"] = _notice("n8", "C-SMS", "delay", "sms", "failed")  # a healthy customer's notice failed
    state.notices["n9"] = _notice("n9", "C-SMS", "delay", "sms", "pending")  # still pending: liveness
    state.attempts["n6"] = state.attempts["n6"][:3]  # gave up after 3 tries
    state.failure_tasks.append(dict(state.failure_tasks[0], task_id="t6b"))  # two tasks for one failure
    f = _judge_dispatch(state, receipts, addresses, topic)
    assert (f.notices_lost, f.notice_copies, f.notice_id_mismatches, f.wrongly_suppressed, f.notices_failed) == (
        1,
        1,
        2,
        1,
        1,
    ), f.to_json()
    assert f.failure_effects_wrong == 2 and f.notices_unsent == 1
    assert f.backlog() == ["notices unsent (still pending): 1"]
