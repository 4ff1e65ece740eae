"""The reliability scorecard at smoke size, one test per scenario, plus checks of its own tools.

The scenarios run once per session module (side by side, two at a time, against their own Tansu
and Postgres); each test then asserts its scenario's row. A row the evidence ties to the test
broker (BROKER-SUSPECT, after the automatic re-run) is an expected failure with that evidence.
`python -m tests.reliability --size full` runs the same scenarios at the issue's sizes.
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


# --- the scenarios ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def scorecard(request: pytest.FixtureRequest):
    workdir = Path(tempfile.mkdtemp(prefix="hub-reliability-smoke-"))
    lines: list[str] = []
    card = await runner.run_scorecard("smoke", None, workdir, parallel=2, report=lines.append)
    runner.write_json(card, workdir / "scorecard-smoke.json")
    _print_past_capture(request, runner.markdown(card) + f"\n(smoke scorecard, {card.wall_s:.0f} s; {workdir})")
    yield card
    if card.passed:
        shutil.rmtree(workdir, ignore_errors=True)


def _print_past_capture(request: pytest.FixtureRequest, text: str) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_line(text)


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
async def test_scenario(scorecard: runner.Scorecard, name: str) -> None:
    row = next(r for r in scorecard.rows if r.scenario.name == name)
    details = orjson.dumps(row.to_json()["attempts"], option=orjson.OPT_INDENT_2, default=str).decode()[:6000]
    if row.status == runner.SUSPECT:
        pytest.xfail(f"test-broker limitation: {row.note}")
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


def _findings(ledger: Ledger, settings, state: HubState, alerts: list, dlq: list) -> Findings:
    f = Findings(events=len(ledger.events))
    checker.check_effects(f, ledger.events, state, settings)
    checker.check_alerts(f, ledger.events, alerts, settings)
    checker.check_sheets(f, ledger, state)
    checker.check_dead_letters(f, ledger, state, dlq, settings)
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


def test_a_failure_explained_by_records_the_broker_lost_is_broker_suspect() -> None:
    from tests.reliability.scenarios import Outcome

    findings = Findings(lost=2, lost_missing_on_broker=2, samples={"missing on broker": ["e1 at [...]"]})
    outcome = Outcome({}, findings, [], None, {}, [], [], {}, [])
    assert runner.broker_suspicion(outcome, runner.failures_of(outcome))
    findings.lost_missing_on_broker = 1  # one lost event the broker still serves: the hub's fault
    assert runner.broker_suspicion(outcome, runner.failures_of(outcome)) is None
