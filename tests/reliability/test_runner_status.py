"""How the scorecard judges a scenario from all its attempts (runner.py), without any service.

The rules: an attempt with a correctness failure (a lost or doubled effect, another broken
invariant or contract) or without a verdict (the scenario raised) makes its row FAIL, whatever
the other attempts show, and is not re-run. An attempt that only stalled (liveness: nothing lost
or doubled) is re-run; a row passes only with a clean attempt, and then lists each stall as a flake.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from tests.reliability import runner
from tests.reliability.checker import Findings
from tests.reliability.runner import FAIL, LIVENESS, PASS, Attempt, Row, Scorecard
from tests.reliability.scenarios import SCENARIOS, Outcome

SCENARIO = SCENARIOS[0]


def outcome(findings: Findings | None = None, failures=(), stalls=(), group_trouble=()) -> Outcome:
    return Outcome(
        {"good_events": 100},
        findings or Findings(events=100),
        ["+  1.0s SIGKILL hub-1"],
        3.5,
        {},
        list(failures),
        ["a note"],
        {},
        list(group_trouble),
        list(stalls),
    )


def attempt(number: int, o: Outcome | None) -> Attempt:
    if o is None:  # the scenario raised before the oracle ran
        return Attempt(number, ["scenario error: TimeoutError: "], [], [], None, "Traceback ...", 300.0, Path("a"))
    correctness, liveness = runner.classify(o)
    evidence = runner.broker_evidence(o) if correctness or liveness else []
    return Attempt(number, correctness, liveness, evidence, o, None, 30.0, Path(f"attempt-{number}"))


def clean() -> Outcome:
    return outcome()


def lost(n: int = 3) -> Outcome:
    return outcome(Findings(events=100, lost=n))


def timed_out() -> Outcome:
    return outcome(stalls=["lag not zero 120s after publishing ended: 1 partitions stuck, 40 records behind"])


def row(*outcomes: Outcome | None) -> Row:
    return Row(SCENARIO, [attempt(n, o) for n, o in enumerate(outcomes, 1)])


# --- the attempt's verdict ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("findings", "verdict"),
    [
        (Findings(lost=1), FAIL),
        (Findings(duplicate_effects=1), FAIL),  # a row or an outbox alert written twice
        (Findings(missing_alerts=1), FAIL),  # its outbox row was sent, yet the alert is not on the queue
        (Findings(stale_overwrites=1), FAIL),
        (Findings(unexpected_effects=1), FAIL),
        (Findings(dead_letter_mismatches=1), FAIL),
        (Findings(dlq_topic_missing=1), FAIL),
        (Findings(altered_text=1), FAIL),
        (Findings(unseen=5), LIVENESS),  # not read yet: the group has not committed past them
        (Findings(unsent=2), LIVENESS),  # still in the outbox
        (Findings(duplicate_alerts=4), PASS),  # the relay is at-least-once; consumers de-duplicate by alert_id
        (Findings(lost=1, unseen=5), FAIL),
    ],
)
def test_each_finding_is_correctness_or_liveness(findings: Findings, verdict: str) -> None:
    assert attempt(1, outcome(findings)).status == verdict


def test_a_scenario_failure_is_correctness_and_a_stall_is_liveness() -> None:
    assert attempt(1, outcome(failures=["canaries leaked: 'x' in hub logs"])).status == FAIL
    assert attempt(1, outcome(failures=["the replay changed rows in outbox (111 -> 112 rows)"])).status == FAIL
    assert attempt(1, outcome(stalls=["no progress within 60s after start 2"])).status == LIVENESS
    both = attempt(1, outcome(failures=["hub-1 stopped with exit 1 after 0.3s"], stalls=["outbox not drained"]))
    assert both.status == FAIL and both.liveness == ["outbox not drained"]


def test_an_attempt_the_oracle_never_judged_fails() -> None:
    assert attempt(1, None).status == FAIL


def test_broker_evidence_never_turns_a_loss_into_anything_else() -> None:
    findings = Findings(lost=2, lost_missing_on_broker=2, samples={"missing on broker": ["e1 at [(0, 7)]"]})
    a = attempt(1, outcome(findings, group_trouble=["UnknownMemberId"]))
    assert a.status == FAIL
    assert len(a.evidence) == 2 and "not served by the broker" in a.evidence[0]


# --- the row's status from all its attempts ---------------------------------------------------------------


def test_a_clean_pass() -> None:
    r = row(clean())
    assert (r.status, r.result, r.flakes) == (PASS, PASS, [])
    assert "flaky" not in r.note


def test_a_correctness_failure_then_a_clean_pass_is_fail() -> None:
    r = row(lost(), clean())
    assert r.status == FAIL and r.flakes == []
    assert "attempt 1 FAIL: lost: 3" in r.note
    assert r.cells()["lost"] == 3  # the table shows the failed attempt's figures, not the clean one's


def test_a_clean_pass_then_a_correctness_failure_is_fail() -> None:
    assert row(clean(), lost()).status == FAIL


def test_a_liveness_failure_then_a_clean_pass_is_a_pass_with_its_flake_listed() -> None:
    r = row(timed_out(), clean())
    assert (r.status, r.result) == (PASS, "PASS (flaky)")
    assert [a.number for a in r.flakes] == [1]
    assert r.note.startswith("flaky: attempt 1 lag not zero 120s")
    (flake,) = r.flake_records()
    assert flake["attempt"] == 1 and flake["cleared_by_attempt"] == 2
    assert flake["liveness_failures"] == timed_out().stalls


def test_only_liveness_failures_is_fail() -> None:
    r = row(timed_out(), timed_out())
    assert r.status == FAIL and r.flakes == []
    assert "stalled: attempt 1" in r.note and "stalled: attempt 2" in r.note


def test_a_liveness_failure_then_a_correctness_failure_is_fail() -> None:
    r = row(timed_out(), lost())
    assert r.status == FAIL and r.flakes == []


def test_an_unjudged_attempt_then_a_clean_pass_is_fail() -> None:
    assert row(None, clean()).status == FAIL


def test_a_liveness_failure_with_unseen_events_then_a_clean_pass_is_flaky() -> None:
    r = row(outcome(Findings(unseen=40), stalls=["lag not zero"], group_trouble=["UnknownMemberId"]), clean())
    assert r.result == "PASS (flaky)"
    assert r.flake_records()[0]["broker_evidence"] == ["the hub logged group-protocol errors: UnknownMemberId"]


def test_no_attempt_is_fail() -> None:
    assert Row(SCENARIO).status == FAIL


# --- re-runs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcomes", "attempts_run"),
    [
        ([clean()], 1),
        ([lost(), clean()], 1),  # a correctness failure is final: no re-run
        ([None, clean()], 1),  # so is an attempt without a verdict
        ([timed_out(), clean()], 2),
        ([timed_out(), timed_out(), clean()], runner.MAX_ATTEMPTS),
    ],
)
async def test_only_a_liveness_failure_is_re_run(
    monkeypatch: pytest.MonkeyPatch, outcomes: list, attempts_run: int
) -> None:
    queue = list(outcomes)

    async def fake_attempt(scenario, size, services, folder, number, seed) -> Attempt:
        return attempt(number, queue.pop(0))

    monkeypatch.setattr(runner, "run_attempt", fake_attempt)
    lines: list[str] = []
    r = await runner.run_row(SCENARIO, "smoke", SimpleNamespace(workdir=Path("w")), 1, lines.append)
    assert len(r.attempts) == attempts_run
    assert len(lines) == 2 * attempts_run


# --- the scorecard -------------------------------------------------------------------------------------------


def card(*rows: Row) -> Scorecard:
    return Scorecard("smoke", list(rows), "2026-11-27T00:00:00+00:00", 100.0, "/tmp/w")


def test_the_scorecard_lists_every_flake_in_its_json_and_markdown() -> None:
    flaky = row(timed_out(), clean())
    doc = orjson.loads(orjson.dumps(card(row(clean()), flaky).to_json(), default=str))
    assert doc["passed"] is True
    assert doc["counts"] == {"PASS": 2, "FAIL": 0, "flaky": 1}
    assert [(f["scenario"], f["attempt"]) for f in doc["flakes"]] == [(SCENARIO.name, 1)]
    assert [r["result"] for r in doc["rows"]] == [PASS, PASS] and [r["flaky"] for r in doc["rows"]] == [False, True]
    assert [a["status"] for a in doc["rows"][1]["attempts"]] == [LIVENESS, PASS]
    text = runner.markdown(card(flaky))
    assert "| PASS (flaky) |" in text
    assert "Flakes (1): liveness failures a re-run cleared" in text and "lag not zero 120s" in text.split("Flakes")[1]
    assert "Flakes: none" in runner.markdown(card(row(clean())))


def test_one_failed_row_fails_the_scorecard() -> None:
    doc = card(row(clean()), row(lost(), clean())).to_json()
    assert doc["passed"] is False and doc["counts"] == {"PASS": 1, "FAIL": 1, "flaky": 0} and doc["flakes"] == []


def test_the_rich_table_renders_both_sections() -> None:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(runner.render(card(row(timed_out(), clean()), row(lost()))))
    text = console.export_text()
    assert "PASS (flaky)" in text and "FAIL" in text and "Flakes (1)" in text
