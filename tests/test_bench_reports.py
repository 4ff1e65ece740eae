"""`python -m bench reports` at a tiny size: every figure of its table is produced, and the generated
month gives every report real work (no figure of theirs is empty). No assertion about speed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import asyncpg

from bench.reports import ReportsOptions, measure, summary_json
from hub.dev.databases import scratch_database
from hub.reports import figures

SHIPMENTS, CUSTOMERS = 3000, 20


async def test_tiny_run_produces_every_figure(pg_admin_dsn: str, tmp_path) -> None:
    options = ReportsOptions(SHIPMENTS, CUSTOMERS, repeat=2, pdf_sample=2, out=tmp_path / "reports.json")
    async with scratch_database(pg_admin_dsn, "bench_reports") as dsn:
        summary = await measure(dsn, options, lambda _: None)
        conn = await asyncpg.connect(dsn)
        try:
            p = figures.month(summary.month, ZoneInfo(summary.timezone))
            complaints = await figures.complaints_report(conn, p, datetime.now(UTC))
            kpi = await figures.kpi_report(conn, p, datetime.now(UTC))
        finally:
            await conn.close()

    assert summary.rows["shipments"] == SHIPMENTS and summary.rows["customers"] == CUSTOMERS
    assert summary.rows["shipment_events"] > 5 * SHIPMENTS
    for table in ("coordination_tasks", "call_logs", "customer_notifications", "clock_firings"):
        assert summary.rows[table] > 0, table
    assert summary.baseline.p50_s > 0
    names = [t.name for t in summary.reports]
    assert names == [
        f"{kind} {fmt}"
        for kind, formats in (("complaints", "json csv html"), ("kpi", "json csv html"), ("statement", "json html pdf"))
        for fmt in formats.split()
    ]
    for t in summary.reports:
        assert t.runs == 2 and 0 < t.p50_s <= t.max_s and t.ratio_to_scan > 0 and t.met is not None, t
    sweep = summary.sweep
    assert sweep is not None
    assert sweep.statements == sweep.stored_json == sweep.notices == CUSTOMERS
    assert sweep.total_s > 0 and sweep.per_statement_ms > 0 and sweep.extrapolated_10000_s > 0
    assert [r.processes for r in summary.pdf] == [1, 2]
    for rate in summary.pdf:
        assert rate.sample == 2 and rate.per_pdf_s > 0 and rate.extrapolated_s > 0 and rate.bytes_p50 > 1000
    assert summary.notes and summary.load_average_after
    written = json.loads(json.dumps(summary_json(summary)))
    assert written["sweep"]["met"] in (True, False) and all("met" in t for t in written["reports"])

    # The month is no empty shell: every figure of both reports counts something.
    assert complaints.complaints > 0 and complaints.repeat_contacts > 0
    for group in (complaints.by_cause, complaints.by_carrier, complaints.by_customer, complaints.by_department):
        assert group
    assert complaints.time_to_resolve.count > 0 and complaints.resolved_within_due.denominator > 0
    assert 0 < complaints.resolved_within_due.numerator < complaints.resolved_within_due.denominator
    backlog = complaints.open_backlog
    assert backlog.under_1_day + backlog.days_1_to_3 + backlog.days_3_to_7 + backlog.over_7_days > 0
    assert kpi.shipments == SHIPMENTS and kpi.exceptions > 0 and kpi.stale_shipments > 0
    assert 0 < kpi.on_time_delivery.numerator < kpi.on_time_delivery.denominator
    assert 0 < kpi.first_contact_resolution.numerator < kpi.first_contact_resolution.denominator
    assert 0 < kpi.csat.numerator < kpi.csat.denominator
    assert {c.channel for c in kpi.notifications} == {"sms", "email", "wechat"}
    assert all(c.sent > 0 for c in kpi.notifications) and any(c.failed > 0 for c in kpi.notifications)
    assert len(kpi.departments) >= 6
    assert all(d.created > 0 and d.resolved > 0 for d in kpi.departments)
    assert any(d.breaches_level_1 > 0 for d in kpi.departments)
    assert any(d.breaches_level_2 > 0 for d in kpi.departments)
