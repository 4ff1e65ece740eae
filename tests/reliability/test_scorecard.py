"""The reliability scorecard at smoke size, one test per scenario, plus checks of its own tools.

The scenarios run once per session module (side by side, two at a time, against their own Tansu
and Postgres); each test then asserts its scenario's row, judged from all its attempts (runner.py):
a row is never an expected failure. A liveness failure a re-run cleared is printed with the table
as a flake. `python -m tests.reliability --size full` runs the same scenarios at the issue's sizes.
The judging rules themselves are tested without services in test_runner_status.py.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from tests.reliability import checker, runner
from tests.reliability.checker import Findings, HubState, alert_id, queue_topics
from tests.reliability.generator import CATALOGUE, PROCESSED, GoodEvent, Ledger, WorkloadSpec, generate
from tests.reliability.harness import scenario_settings
from tests.reliability.oracle import CALL, CARRIER, SHIPMENT, SheetFact, expected_sheet
from tests.reliability.publisher import stream_topics
from tests.reliability.scenarios import SCENARIOS

pytestmark = pytest.mark.slow
# The first scenario test waits for the whole smoke scorecard (about 7 min here, 2 lanes): a bound
# well past it, under CI's 90 minutes, whatever the per-attempt timeouts add up to.
SCORECARD_TIMEOUT_S = 2400


# --- the scenarios ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def scorecard(request: pytest.FixtureRequest):
    workdir = Path(tempfile.mkdtemp(prefix="hub-reliability-smoke-"))
    lines: list[str] = []
    card = await runner.run_scorecard("smoke", None, workdir, parallel=2, report=lines.append)
    runner.write_json(card, workdir / "scorecard-smoke.json")
    _print_past_capture(request, runner.markdown(card) + f"\n(smoke scorecard, {card.wall_s:.0f} s; {workdir})")
    yield card
    if card.passed and not card.flakes:  # a failure's or a flake's logs stay for a look
        shutil.rmtree(workdir, ignore_errors=True)


def _print_past_capture(request: pytest.FixtureRequest, text: str) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_line(text)


@pytest.mark.timeout(SCORECARD_TIMEOUT_S)
@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
async def test_scenario(scorecard: runner.Scorecard, name: str) -> None:
    row = next(r for r in scorecard.rows if r.scenario.name == name)
    details = orjson.dumps(row.to_json()["attempts"], option=orjson.OPT_INDENT_2, default=str).decode()[:6000]
    assert row.status == runner.PASS, f"{name}: {row.note}\n{details}"


# --- the tools the scenarios rely on -------------------------------------------------------------------------


def test_generator_is_deterministic_and_covers_the_catalogue() -> None:
    spec = WorkloadSpec(
        600, hostile_share=0.01, sql_share=0.3, stale_share=0.2, shuffle_window=4, copies=2, third_copy_share=0.1
    )
    first, again, other = generate(5, spec), generate(5, spec), generate(6, spec)
    assert [p.item.value for p in first.publications] == [p.item.value for p in again.publications]
    assert [p.item.value for p in first.publications] != [p.item.value for p in other.publications]
    assert {p.item.name for p in first.hostile} >= set(CATALOGUE) | {"conflicting_duplicate"}
    copies = Counter(p.copy for p in first.publications if isinstance(p.item, GoodEvent))
    assert copies[1] == len(first.events) == copies[2] and 0 < copies[3] < copies[1] / 5
    assert any("stale" in e.tags for e in first.events.values())


def test_reserialized_copies_differ_in_bytes_only() -> None:
    from hub.core.decoding import payload_hash
    from schemas.inbound import CallLog, CarrierUpdate, ShipmentEvent

    models = {SHIPMENT: ShipmentEvent, CARRIER: CarrierUpdate, CALL: CallLog}
    ledger = generate(4, WorkloadSpec(300, copies=2, reserialized_share=0.5))
    other = [p for p in ledger.publications if p.reserialized is not None]
    assert len(other) > 50
    for pub in other:
        model = models[pub.item.stream]
        assert pub.value != pub.item.value
        same = model.model_validate_json(pub.value), model.model_validate_json(pub.item.value)
        assert payload_hash(same[0]) == payload_hash(same[1])


def test_every_good_event_is_valid_and_every_hostile_one_is_refused_for_its_reason() -> None:
    from hub.core.decoding import Accepted, Record, decode_record, payload_hash
    from schemas.inbound import CallLog, CarrierUpdate, ShipmentEvent

    models = {SHIPMENT: ShipmentEvent, CARRIER: CarrierUpdate, CALL: CallLog}
    ledger = generate(
        9, WorkloadSpec(400, hostile_share=0.05, sql_share=0.5, canaries=True, oversized_bytes=(1_500_000,))
    )
    for event in ledger.events.values():
        assert isinstance(
            decode_record(Record("t", 0, 0, event.key, event.value), models[event.stream], 1 << 20), Accepted
        ), event.value[:200]
    for pub in ledger.hostile:
        hostile = pub.item
        if hostile.reason == "conflicting_duplicate":
            continue  # valid on its own; a conflict only with the stored original
        verdict = decode_record(Record("t", 0, 0, hostile.key, hostile.value), models[hostile.stream], 1 << 20)
        outcome = PROCESSED if isinstance(verdict, Accepted) else verdict.reason
        assert outcome in {hostile.reason} | hostile.alternatives, hostile.name
        if isinstance(verdict, Accepted):
            # A re-publish in other bytes is compared by content: that must work for whatever is accepted.
            assert payload_hash(verdict.event), hostile.name


def test_expected_sheet_follows_occurred_at_not_arrival() -> None:
    from datetime import UTC, datetime

    t = datetime(2026, 1, 1, tzinfo=UTC)
    facts = [
        SheetFact(t + timedelta(hours=3), "delivered", None),
        SheetFact(t + timedelta(hours=1), "in_transit", t + timedelta(days=2)),
        SheetFact(t + timedelta(hours=2), "out_for_delivery", t + timedelta(days=1)),
        SheetFact(t + timedelta(minutes=90), "in_transit", t + timedelta(days=5)),
    ]  # stale, arrived last
    want = expected_sheet(facts)
    assert (want.status, want.eta) == ("delivered", t + timedelta(days=1))


@dataclass
class _FakeRecord:
    topic: str
    value: bytes
    partition: int = 0
    offset: int = 0
    headers: tuple = ()


def _perfect_hub(ledger: Ledger, settings) -> tuple[HubState, list, list]:
    """What a flawless hub leaves behind for `ledger`: the state, the alert records, the DLQ records."""
    topics, queues = stream_topics(settings), queue_topics(settings)
    state = HubState({}, Counter(), {}, {}, {}, [], {})
    alerts = []
    for event in ledger.events.values():
        state.inbox[event.event_id] = (topics[event.stream], 0, 0)
        state.history[event.event_id] = 1
        for queue, rule in event.expect.rules:
            state.tasks[(event.event_id, rule, rule)] = 1
            state.outbox_alerts[(queues[queue], alert_id(event.event_id, rule))] = 1
            alerts.append(_FakeRecord(queues[queue], orjson.dumps({"alert_id": alert_id(event.event_id, rule)})))
        for kind in event.expect.notifications:
            state.notices[(event.event_id, kind)] = 1
    for shipment_id, sheet in ledger.expected_sheets().items():
        state.sheets[shipment_id] = {"status": sheet.status, "eta": sheet.eta}
    dlq = []
    for pub in ledger.hostile:
        where = (topics[pub.item.stream], *pub.position)
        state.dead_letters.append(
            {
                "id": f"dead-{where[2]}",
                "source_topic": where[0],
                "source_partition": where[1],
                "source_offset": where[2],
                "reason": pub.item.reason,
                "error_class": "E",
                "message": "m",
                "value": pub.item.value,
            }
        )
        headers = (
            ("hub.errors.topic", where[0].encode()),
            ("hub.errors.partition", str(where[1]).encode()),
            ("hub.errors.offset", str(where[2]).encode()),
            ("hub.errors.reason", pub.item.reason.encode()),
        )
        dlq.append(_FakeRecord(settings.topic_dead_letter, pub.item.value or b"", headers=headers))
    return state, alerts, dlq


def _findings(
    ledger: Ledger, settings, state: HubState, alerts: list, dlq: list, behind: checker.Unread | None = None
) -> Findings:
    """What check() finds, without the services (the same steps in the same order)."""
    behind = behind or checker.Unread()
    f = Findings(events=len(ledger.events))
    unseen = checker.check_effects(f, ledger.events, state, settings, checker.may_be_stored(ledger), behind.events)
    checker.check_alerts(f, ledger.events, alerts, settings, state.unsent, unseen)
    checker.check_sheets(f, ledger, state, unseen)
    checker.check_dead_letters(f, ledger, state, dlq, settings, behind.positions)
    return f


def test_checker_finds_nothing_wrong_with_a_perfect_hub_and_each_planted_anomaly() -> None:
    settings = scenario_settings("127.0.0.1:9", "postgresql://nobody@127.0.0.1:9/none")
    ledger = generate(3, WorkloadSpec(300, hostile_share=0.03, stale_share=0.3, shuffle_window=3))
    for offset, pub in enumerate(ledger.publications):
        pub.position = (0, offset)
    state, alerts, dlq = _perfect_hub(ledger, settings)
    assert _findings(ledger, settings, state, alerts, dlq).violations() == []

    with_rules = next(e for e in ledger.events.values() if e.expect.rules)
    with_notice = next(e for e in ledger.events.values() if e.expect.notifications and e is not with_rules)
    quiet = next(e for e in ledger.events.values() if not e.expect.rules)
    _queue, rule = with_rules.expect.rules[0]
    del state.tasks[(with_rules.event_id, rule, rule)]  # lost: a task never written
    state.notices[(with_notice.event_id, with_notice.expect.notifications[0])] = 2  # duplicate effect
    state.tasks[(quiet.event_id, "damage", "damage")] = 1  # unexpected effect
    shipment_id = next(iter(state.sheets))
    state.sheets[shipment_id] = {"status": "created", "eta": None}  # stale overwrite
    alerts.append(alerts[0])  # a duplicate alert: counted, allowed
    alerts.pop(1)  # a missing alert
    state.dead_letters[0] = {**state.dead_letters[0], "reason": "unprocessable"}  # wrong reason
    f = _findings(ledger, settings, state, alerts, dlq)
    assert (
        f.lost,
        f.duplicate_effects,
        f.unexpected_effects,
        f.stale_overwrites,
        f.duplicate_alerts,
        f.missing_alerts,
        f.dead_letter_mismatches,
    ) == (1, 1, 1, 1, 1, 1, 1), f.to_json()
    assert {v.split(":")[0] for v in f.violations()} == {
        "lost",
        "duplicate effects",
        "unexpected effects",
        "missing alerts",
        "stale overwrites",
        "dead-letter mismatches",
    }


def test_records_the_broker_lost_are_evidence_beside_a_loss_never_instead_of_it() -> None:
    from tests.reliability.scenarios import Outcome

    findings = Findings(lost=2, lost_missing_on_broker=2, samples={"missing on broker": ["e1 at [...]"]})
    outcome = Outcome({}, findings, [], None, {}, [], [], {}, [])
    correctness, liveness = runner.classify(outcome)
    assert correctness == ["lost: 2"] and liveness == []
    assert "2 of 2 lost events are not served by the broker" in runner.broker_evidence(outcome)[0]
    attempt = runner.Attempt(1, correctness, liveness, runner.broker_evidence(outcome), outcome, None, 1.0, Path())
    assert attempt.status == runner.FAIL


def _positioned_ledger() -> Ledger:
    """All publications on partition 0 of their topics, at distinct offsets."""
    ledger = generate(8, WorkloadSpec(200, hostile_share=0.03))
    for offset, pub in enumerate(ledger.publications):
        pub.position = (0, offset)
    return ledger


def test_an_event_the_group_has_not_committed_past_is_unseen_and_one_it_passed_is_lost() -> None:
    settings = scenario_settings("127.0.0.1:9", "postgresql://nobody@127.0.0.1:9/none")
    ledger = _positioned_ledger()
    topics = stream_topics(settings)
    state, alerts, dlq = _perfect_hub(ledger, settings)
    # The hub has read everything up to offset `cut` of every topic's partition 0, nothing after it.
    cut = len(ledger.publications) // 2
    late = ledger.publications[cut:]
    for pub in late:
        item = pub.item
        if isinstance(item, GoodEvent):
            del state.inbox[item.event_id]
            del state.history[item.event_id]
            for key in [k for k in state.tasks if k[0] == item.event_id]:
                del state.tasks[key]
            for key in [k for k in state.notices if k[0] == item.event_id]:
                del state.notices[key]
            wanted = {alert_id(item.event_id, r) for _, r in item.expect.rules}
            for key in [k for k in state.outbox_alerts if k[1] in wanted]:
                del state.outbox_alerts[key]
            alerts = [a for a in alerts if orjson.loads(a.value)["alert_id"] not in wanted]
        else:
            where = (topics[item.stream], 0, pub.position[1])
            state.dead_letters = [
                d for d in state.dead_letters if (d["source_topic"], d["source_partition"], d["source_offset"]) != where
            ]
            dlq = [r for r in dlq if dict(r.headers).get("hub.errors.offset") != str(pub.position[1]).encode()]
    unread_ids = frozenset(p.item.event_id for p in late if isinstance(p.item, GoodEvent))
    state.sheets = {
        k: {"status": v.status, "eta": v.eta} for k, v in ledger.expected_sheets(without=unread_ids).items()
    }
    good_late = len(unread_ids)
    hostile_late = len(late) - good_late
    assert good_late and hostile_late

    committed = {(t, 0): cut for t in topics.values()}
    behind = checker.unread(ledger, settings, committed)
    f = _findings(ledger, settings, state, alerts, dlq, behind)
    assert f.violations() == [], f.to_json()
    assert (f.unseen, f.lost) == (good_late + hostile_late, 0)
    assert f.backlog() == [f"unseen (not yet read by the group, nothing stored): {good_late + hostile_late}"]

    # The group committed past them, yet nothing is stored: lost, not merely unseen.
    passed = {(t, 0): len(ledger.publications) for t in topics.values()}
    f = _findings(ledger, settings, state, alerts, dlq, checker.unread(ledger, settings, passed))
    assert (f.lost, f.unseen) == (good_late, 0) and f.dead_letter_mismatches == hostile_late
    # Without the committed offsets nothing is unseen: every missing event counts as lost.
    f = _findings(ledger, settings, state, alerts, dlq, checker.unread(ledger, settings, None))
    assert (f.lost, f.unseen) == (good_late, 0)


def test_a_partly_stored_event_is_lost_even_where_the_group_has_not_committed() -> None:
    settings = scenario_settings("127.0.0.1:9", "postgresql://nobody@127.0.0.1:9/none")
    ledger = _positioned_ledger()
    state, alerts, dlq = _perfect_hub(ledger, settings)
    event = next(e for e in ledger.events.values() if e.expect.rules)
    _queue, rule = event.expect.rules[0]
    del state.tasks[(event.event_id, rule, rule)]  # the inbox row is there, a task is not
    behind = checker.unread(ledger, settings, {})  # offset 0 committed: nothing passed
    f = _findings(ledger, settings, state, alerts, dlq, behind)
    assert (f.lost, f.unseen) == (1, 0)


def test_an_alert_still_in_the_outbox_is_unsent_and_one_marked_sent_is_missing() -> None:
    settings = scenario_settings("127.0.0.1:9", "postgresql://nobody@127.0.0.1:9/none")
    ledger = _positioned_ledger()
    state, alerts, dlq = _perfect_hub(ledger, settings)
    waiting, gone = alerts[:2]  # neither on its queue: one still in the outbox, one marked sent
    alerts = alerts[2:]
    dead = state.dead_letters[0]
    dlq = [r for r in dlq if dict(r.headers)["hub.errors.offset"] != str(dead["source_offset"]).encode()]
    state.unsent = frozenset(
        {(waiting.topic, orjson.loads(waiting.value)["alert_id"]), (settings.topic_dead_letter, dead["id"])}
    )
    f = _findings(ledger, settings, state, alerts, dlq)
    assert (f.unsent, f.missing_alerts, f.dlq_topic_missing) == (2, 1, 0), f.to_json()
    assert f.violations() == ["missing alerts: 1"] and f.backlog() == ["unsent (still in the outbox): 2"]
    assert orjson.loads(gone.value)["alert_id"] in str(f.samples["missing alert"])


def test_the_sheet_is_expected_from_the_events_the_hub_has_read() -> None:
    settings = scenario_settings("127.0.0.1:9", "postgresql://nobody@127.0.0.1:9/none")
    ledger = generate(8, WorkloadSpec(300, shuffle_window=3))
    shipment = next(
        s
        for s in ledger.expected_sheets()
        if sum(1 for e in ledger.events.values() if e.shipment_id == s and e.status) > 1
    )
    latest = max(
        (e for e in ledger.events.values() if e.shipment_id == shipment and e.status), key=lambda e: e.occurred_at
    )
    earlier = ledger.expected_sheets(without=frozenset({latest.event_id}))[shipment]
    assert earlier != ledger.expected_sheets()[shipment]
    state, _, _ = _perfect_hub(ledger, settings)
    state.sheets[shipment] = {"status": earlier.status, "eta": earlier.eta}  # the latest event not read yet
    f = Findings()
    checker.check_sheets(f, ledger, state, frozenset({latest.event_id}))
    assert f.stale_overwrites == 0
    checker.check_sheets(f, ledger, state)  # read, yet not on the sheet: a stale sheet
    assert f.stale_overwrites == 1
