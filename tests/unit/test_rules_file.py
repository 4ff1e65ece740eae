"""The shipped rules file is the contract's routing table; a broken file is refused with its line.

Broken files are copies of hub/rules.yaml (or hub/templates.yaml) with one line changed; the
expected line number is computed from where the changed text sits in the copy.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from hub.core.rules import DEFAULT_RULES_FILE, DEFAULT_TEMPLATES_FILE, Rules, RulesError, load_rules
from schemas.enums import (
    AlertKind,
    CallCategory,
    CustomerTier,
    Department,
    Language,
    NotificationKind,
    Severity,
)

# The contract's routing table, in table order: id, triggers, queue, kind, department, severity, notification.
CONTRACT_TABLE = [
    (
        "damage",
        {"exception:damaged"},
        "exceptions",
        AlertKind.DAMAGE,
        Department.CLAIMS,
        Severity.P1,
        NotificationKind.EXCEPTION,
    ),
    (
        "loss",
        {"exception:lost"},
        "exceptions",
        AlertKind.LOSS,
        Department.CLAIMS,
        Severity.P1,
        NotificationKind.EXCEPTION,
    ),
    (
        "delivery_problem",
        {"shipment:delivery_failed", "carrier:attempt_failed", "exception:address_issue", "exception:refused"},
        "exceptions",
        AlertKind.DELIVERY_PROBLEM,
        Department.CARRIER_LIAISON,
        Severity.P2,
        NotificationKind.DELIVERY_PROBLEM,
    ),
    (
        "customs_hold",
        {"exception:customs_hold"},
        "exceptions",
        AlertKind.CUSTOMS_HOLD,
        Department.DISPATCH,
        Severity.P2,
        NotificationKind.EXCEPTION,
    ),
    (
        "delay",
        {"exception:delayed", "exception:weather", "exception:other", "eta_past_promise"},
        "exceptions",
        AlertKind.DELAY,
        Department.CARRIER_LIAISON,
        Severity.P3,
        NotificationKind.DELAY,
    ),
    (
        "urgent_order",
        {"shipment:urgent_created", "call:urgent_order"},
        "urgent_orders",
        AlertKind.URGENT_ORDER,
        Department.DISPATCH,
        Severity.P1,
        NotificationKind.URGENT_ORDER_CONFIRMED,
    ),
    (
        "complaint",
        {"call:complaint"},
        "complaints",
        AlertKind.COMPLAINT,
        Department.COMPLAINTS,
        Severity.P2,
        NotificationKind.COMPLAINT_RECEIVED,
    ),
    (
        "claim",
        {"call:claim"},
        "exceptions",
        AlertKind.CLAIM,
        Department.CLAIMS,
        Severity.P2,
        NotificationKind.CLAIM_RECEIVED,
    ),
    (  # contract 1.1, "Surveys"
        "low_satisfaction",
        {"survey:low_score"},
        "complaints",
        AlertKind.LOW_SATISFACTION,
        Department.COMPLAINTS,
        Severity.P2,
        None,
    ),
    (
        "repeat_contact",
        {"repeat_contact"},
        "complaints",
        AlertKind.REPEAT_CONTACT,
        Department.COMPLAINTS,
        Severity.P2,
        None,
    ),
]
MILESTONES = {
    NotificationKind.DISPATCHED: {"shipment:dispatched", "carrier:accepted"},
    NotificationKind.OUT_FOR_DELIVERY: {"shipment:out_for_delivery", "carrier:out_for_delivery"},
    NotificationKind.DELIVERED: {"shipment:delivered", "carrier:delivered"},
}


@pytest.fixture(scope="module")
def shipped() -> Rules:
    return load_rules()


# --- the shipped file ---------------------------------------------------------------------------


def test_shipped_rules_are_the_contract_table_in_order(shipped: Rules):
    actual = [(r.id, set(r.when), r.queue, r.kind, r.task.department, r.task.severity, r.notify) for r in shipped.rules]
    assert actual == CONTRACT_TABLE


def test_response_hours_are_the_contract_defaults(shipped: Rules):
    assert shipped.response_hours == {Severity.P1: 2, Severity.P2: 8, Severity.P3: 24, Severity.P4: 72}
    assert shipped.response_time(Severity.P3) == timedelta(hours=24)


def test_only_damage_and_loss_attach_the_declared_value(shipped: Rules):
    assert [r.id for r in shipped.rules if r.task.attach_declared_value] == ["damage", "loss"]


def test_only_urgent_orders_use_the_urgent_due_rule(shipped: Rules):
    assert [r.id for r in shipped.rules if r.task.due == "urgent_order"] == ["urgent_order"]


def test_key_account_settings(shipped: Rules):
    spec = shipped.key_account
    assert (spec.tier, spec.raise_severity_by) == (CustomerTier.KEY, 1)
    assert (spec.task.department, spec.task.kind) == (Department.KEY_ACCOUNTS, "key_account_followup")


def test_repeat_contact_settings(shipped: Rules):
    spec = shipped.repeat_contact
    assert spec.window == timedelta(hours=24)
    assert set(spec.categories) == {CallCategory.QUERY, CallCategory.COMPLAINT}


def test_milestones(shipped: Rules):
    assert {kind: set(when) for kind, when in shipped.milestones.items()} == MILESTONES


def test_every_notification_kind_has_both_languages(shipped: Rules):
    for kind in NotificationKind:
        for language in Language:
            assert shipped.templates[kind][language].strip(), (kind, language)


def test_complaint_template_quotes_the_reference(shipped: Rules):
    for language in Language:
        assert "{reference}" in shipped.templates[NotificationKind.COMPLAINT_RECEIVED][language]


def test_default_path_and_explicit_path_agree(shipped: Rules):
    assert load_rules(DEFAULT_RULES_FILE, DEFAULT_TEMPLATES_FILE) == shipped


def test_an_edited_valid_file_is_used(tmp_path: Path):
    path, _ = edited(
        tmp_path, "response_hours: {P1: 2, P2: 8, P3: 24, P4: 72}", "response_hours: {P1: 1, P2: 4, P3: 12, P4: 48}"
    )
    rules = load_rules(path)
    assert rules.response_time(Severity.P3) == timedelta(hours=12)


# --- broken files -------------------------------------------------------------------------------


def edited(
    tmp_path: Path,
    old: str,
    new: str,
    *,
    source: Path = DEFAULT_RULES_FILE,
    occurrence: int = 1,
    name: str = "rules.yaml",
) -> tuple[Path, int]:
    """A copy of `source` with the `occurrence`-th `old` replaced; returns it and the changed line's number."""
    text = source.read_text(encoding="utf-8")
    start = -1
    for _ in range(occurrence):
        start = text.index(old, start + 1)
    changed = text[:start] + new + text[start + len(old) :]
    path = tmp_path / name
    path.write_text(changed, encoding="utf-8")
    return path, changed.count("\n", 0, start) + 1


def refusal(call) -> str:
    with pytest.raises(RulesError) as caught:
        call()
    return str(caught.value)


BROKEN_RULES = [
    ("unknown trigger", 'when: ["exception:damaged"]', 'when: ["exception:smashed"]', ("exception:smashed", "trigger")),
    ("unknown trigger in a list", '"exception:refused"]', '"exception:refuse"]', ("exception:refuse",)),
    (
        "unknown department",
        "task: {department: carrier_liaison, severity: P3",
        "task: {department: logistics, severity: P3",
        ("department",),
    ),
    ("bad severity", 'severity: P2, title: "Customs hold', 'severity: P5, title: "Customs hold', ("severity",)),
    ("lowercase severity", 'severity: P1, title: "Urgent order', 'severity: p1, title: "Urgent order', ("severity",)),
    ("unknown queue", "queue: complaints\n    kind: complaint", "queue: grievances\n    kind: complaint", ("queue",)),
    ("unknown alert kind", "kind: claim\n", "kind: refund\n", ("kind",)),
    ("unknown notification kind", "notify: claim_received", "notify: claim_acknowledged", ("notify",)),
    (
        "unknown title placeholder",
        'title: "Delay: shipment {shipment_id}"',
        'title: "Delay: shipment {shipment}"',
        ("placeholder", "shipment"),
    ),
    (
        "missing response hour",
        "response_hours: {P1: 2, P2: 8, P3: 24, P4: 72}",
        "response_hours: {P1: 2, P2: 8, P3: 24}",
        ("response_hours", "P4"),
    ),
    (
        "unknown key-account department",
        "task: {department: key_accounts",
        "task: {department: vip_desk",
        ("department",),
    ),
    ("unknown repeat-contact category", "categories: [query, complaint]", "categories: [query, rant]", ("categories",)),
    ("misspelt rule field", "    notify: delay\n", "    notfy: delay\n", ("notfy",)),
    (
        "unknown milestone trigger",
        'delivered: ["shipment:delivered", "carrier:delivered"]',
        'delivered: ["shipment:delivered", "carrier:signed"]',
        ("carrier:signed",),
    ),
    ("invalid YAML", "    queue: urgent_orders\n", "    queue: urgent_orders: now\n", ("not valid YAML",)),
]


@pytest.mark.parametrize(
    ("name", "old", "new", "words"),
    BROKEN_RULES,
    ids=[c.values[0] if hasattr(c, "values") else c[0] for c in BROKEN_RULES],
)
def test_broken_rules_file_is_refused_with_file_and_line(
    tmp_path: Path, name: str, old: str, new: str, words: tuple[str, ...]
):
    path, line = edited(tmp_path, old, new)
    message = refusal(lambda: load_rules(path))
    assert message.startswith(f"{path}: line {line}: "), message
    for word in words:
        assert word in message, message


def test_duplicate_rule_id_is_refused_at_the_repeated_id(tmp_path: Path):
    path, line = edited(tmp_path, "  - id: loss\n", "  - id: damage\n")
    message = refusal(lambda: load_rules(path))
    assert message.startswith(f"{path}: line {line}: "), message
    assert "damage" in message


def test_duplicate_rule_id_is_refused(tmp_path: Path):
    path, _ = edited(tmp_path, "  - id: loss\n", "  - id: damage\n")
    message = refusal(lambda: load_rules(path))
    assert message.startswith(f"{path}: line ") and "unique" in message and "damage" in message


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('when: ["exception:customs_hold"]', 'when: ["exception:customs_hold"'),
        ("  window_hours: 24\n", "   window_hours: 24\n"),
    ],
    ids=["unclosed list", "indentation"],
)
def test_invalid_yaml_reports_where_the_parser_stopped(tmp_path: Path, old: str, new: str):
    # Some mistakes are only detectable on a following line; the parser reports that one.
    path, line = edited(tmp_path, old, new)
    message = refusal(lambda: load_rules(path))
    assert str(path) in message and "not valid YAML" in message
    reported = int(message.split(": line ")[1].split(":")[0])
    assert line <= reported <= line + 3


def test_missing_file_is_refused_with_a_hint(tmp_path: Path):
    path = tmp_path / "nope.yaml"
    message = refusal(lambda: load_rules(path))
    assert str(path) in message and "HUB_RULES_FILE" in message


def test_a_file_that_is_not_a_mapping_is_refused_at_line_1(tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text("- damage\n- loss\n", encoding="utf-8")
    assert refusal(lambda: load_rules(path)).startswith(f"{path}: line 1: ")


def test_an_empty_rules_list_is_refused(tmp_path: Path):
    text = DEFAULT_RULES_FILE.read_text(encoding="utf-8")
    head, _, tail = text.partition("rules:\n")
    path = tmp_path / "rules.yaml"
    path.write_text(head + "rules: []\n" + tail[tail.index("# Milestones") :], encoding="utf-8")
    message = refusal(lambda: load_rules(path))
    line = (head + "rules: []\n").count("\n")
    assert message.startswith(f"{path}: line {line}: rules"), message


# --- broken templates ---------------------------------------------------------------------------


def _template_line(kind: str, language: str) -> str:
    for text_line in DEFAULT_TEMPLATES_FILE.read_text(encoding="utf-8").splitlines(keepends=True):
        if text_line.startswith(f"  {language}:") and _kind_above(text_line) == kind:
            return text_line
    raise AssertionError(f"no {language} text for {kind} in {DEFAULT_TEMPLATES_FILE}")


def _kind_above(wanted: str) -> str | None:
    kind = None
    for text_line in DEFAULT_TEMPLATES_FILE.read_text(encoding="utf-8").splitlines(keepends=True):
        if text_line and not text_line.startswith((" ", "#")):
            kind = text_line.split(":")[0]
        if text_line == wanted:
            return kind
    return None


@pytest.mark.parametrize("kind", ["exception", "delivery_problem", "delivered"])
def test_templates_missing_an_english_text_are_refused_at_the_kind(tmp_path: Path, kind: str):
    path, _ = edited(tmp_path, _template_line(kind, "en"), "", source=DEFAULT_TEMPLATES_FILE, name="templates.yaml")
    # The text is gone, so the line to look at is its notification kind's.
    kind_line = path.read_text(encoding="utf-8").splitlines().index(f"{kind}:") + 1
    message = refusal(lambda: load_rules(None, path))
    assert message.startswith(f"{path}: line {kind_line}: "), message
    assert "'en'" in message and f"'{kind}'" in message


def test_templates_with_an_unknown_placeholder_are_refused_at_the_text(tmp_path: Path):
    old = _template_line("delay", "en")
    path, line = edited(
        tmp_path,
        old,
        old.replace("{shipment_id}", "{tracking_no}"),
        source=DEFAULT_TEMPLATES_FILE,
        name="templates.yaml",
    )
    message = refusal(lambda: load_rules(None, path))
    assert message.startswith(f"{path}: line {line}: ") and "tracking_no" in message, message


def test_templates_missing_a_whole_kind_are_refused(tmp_path: Path):
    path, _ = edited(
        tmp_path, "claim_received:\n", "claim_receipt:\n", source=DEFAULT_TEMPLATES_FILE, name="templates.yaml"
    )
    message = refusal(lambda: load_rules(None, path))
    assert str(path) in message and "claim_received" in message
