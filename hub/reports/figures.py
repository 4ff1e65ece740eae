"""Every figure of the reports, defined once: one function (and one named query) per figure, its
docstring saying how it is counted. All are SQL aggregates over the hub's own tables, as of the
moment asked, for a period [start, end) in HUB_TIMEZONE; `customer` narrows a figure to one
customer where it has one.

Common definitions:
- a shipment *of the period*: its `created` event occurred in the period;
- a shipment *delivered in the period*: its first `delivered` (or carrier `delivered`) event did;
- a *complaint*: a task of kind complaint, repeat_contact or low_satisfaction opened in the period;
- a task is *resolved* when it became done; *within SLA* when resolved by its due_at;
- durations are resolved_at - opened_at, in hours.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from typing import Concatenate, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

import asyncpg

from hub.reports.models import (
    BacklogAge,
    ChannelCounts,
    ComplaintsReport,
    Count,
    DailyCount,
    DepartmentKpi,
    Durations,
    KpiReport,
    Period,
    Share,
    Statement,
)

COMPLAINT_KINDS = ["complaint", "repeat_contact", "low_satisfaction"]
CONTACT_CATEGORIES = ["query", "complaint"]
FIRST_CONTACT_DAYS = 7


# --- periods -----------------------------------------------------------------------------------------


def month(label: str, zone: ZoneInfo) -> Period:
    """A calendar month (YYYY-MM) in `zone`."""
    try:
        first = date.fromisoformat(f"{label}-01")
    except ValueError:
        raise ValueError(f"month {label!r}: write it as YYYY-MM, e.g. 2026-11") from None
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return Period(
        label=label,
        start=datetime.combine(first, time(), zone),
        end=datetime.combine(following, time(), zone),
        timezone=zone.key,
    )


def days(start: date, end: date, zone: ZoneInfo) -> Period:
    """From the start of `start` to the end of `end` (both included), in `zone`."""
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    return Period(
        label=f"{start}..{end}",
        start=datetime.combine(start, time(), zone),
        end=datetime.combine(end + timedelta(days=1), time(), zone),
        timezone=zone.key,
    )


def previous_month(moment: datetime, zone: ZoneInfo) -> Period:
    local = moment.astimezone(zone)
    first = date(local.year, local.month, 1) - timedelta(days=1)
    return month(f"{first.year:04d}-{first.month:02d}", zone)


def _share(numerator: int, denominator: int) -> Share:
    return Share(
        numerator=numerator,
        denominator=denominator,
        percent=round(100 * numerator / denominator, 1) if denominator else None,
    )


def _per_1000(count: int, shipments: int) -> float | None:
    return round(1000 * count / shipments, 2) if shipments else None


def _durations(row: asyncpg.Record) -> Durations:
    def hours(value: float | None) -> float | None:
        return None if value is None else round(value / 3600, 1)

    return Durations(count=row["n"], median_hours=hours(row["median_s"]), p90_hours=hours(row["p90_s"]))


def _counts(rows: list[asyncpg.Record]) -> list[Count]:
    return [Count(key=r["key"] or "-", count=r["n"]) for r in rows]


# --- shipments ---------------------------------------------------------------------------------------

SHIPMENTS_CREATED = """
SELECT count(DISTINCT e.shipment_id) FROM shipment_events AS e JOIN shipments AS s USING (shipment_id)
WHERE e.status = 'created' AND e.occurred_at >= $1 AND e.occurred_at < $2 AND ($3::text IS NULL OR s.customer_id = $3)
"""


async def shipments(conn: asyncpg.Connection, p: Period, customer: str | None) -> int:
    """Shipments of the period: distinct shipments whose `created` event occurred in it."""
    return int(await conn.fetchval(SHIPMENTS_CREATED, p.start, p.end, customer))


SHIPMENTS_PER_DAY = """
SELECT (e.occurred_at AT TIME ZONE $4)::date AS day, count(DISTINCT e.shipment_id) AS n
FROM shipment_events AS e JOIN shipments AS s USING (shipment_id)
WHERE e.status = 'created' AND e.occurred_at >= $1 AND e.occurred_at < $2 AND s.customer_id = $3
GROUP BY 1 ORDER BY 1
"""


async def shipments_per_day(conn: asyncpg.Connection, p: Period, customer: str) -> list[DailyCount]:
    """Shipments of the period by the local day (HUB_TIMEZONE) of their `created` event; every day listed."""
    found = {r["day"]: r["n"] for r in await conn.fetch(SHIPMENTS_PER_DAY, p.start, p.end, customer, p.timezone)}
    first, last = p.start.date(), (p.end - timedelta(seconds=1)).date()
    return [
        DailyCount(day=first + timedelta(days=i), shipments=found.get(first + timedelta(days=i), 0))
        for i in range((last - first).days + 1)
    ]


# A shipment's first delivered event is in the period when it has one in the period and none before
# it: so only the period's delivered events (and the customer's, for a statement) are grouped, not
# every delivered event ever recorded.
ON_TIME = """
SELECT count(*) AS delivered,
       count(*) FILTER (WHERE d.promised IS NOT NULL) AS promised,
       count(*) FILTER (WHERE d.at <= d.promised) AS on_time
FROM (
    SELECT s.shipment_id, min(e.occurred_at) AS at, s.promised_delivery_at AS promised
    FROM shipment_events AS e JOIN shipments AS s USING (shipment_id)
    WHERE e.status = 'delivered' AND e.occurred_at >= $1 AND e.occurred_at < $2
      AND ($3::text IS NULL OR s.customer_id = $3)
      AND NOT EXISTS (SELECT 1 FROM shipment_events AS earlier
                      WHERE earlier.shipment_id = e.shipment_id AND earlier.status = 'delivered'
                        AND earlier.occurred_at < $1)
    GROUP BY s.shipment_id, s.promised_delivery_at
) AS d
"""


async def deliveries(conn: asyncpg.Connection, p: Period, customer: str | None) -> tuple[int, Share]:
    """(delivered, on time): shipments delivered in the period (first delivered event, either stream);
    on time = delivered by promised_delivery_at, over those delivered with a promise."""
    row = await conn.fetchrow(ON_TIME, p.start, p.end, customer)
    return row["delivered"], _share(row["on_time"], row["promised"])


EXCEPTIONS_BY_KIND = """
SELECT coalesce(e.payload -> 'exception' ->> 'code', e.payload ->> 'exception_code', 'other') AS key, count(*) AS n
FROM shipment_events AS e JOIN shipments AS s USING (shipment_id)
WHERE e.status = 'exception' AND e.occurred_at >= $1 AND e.occurred_at < $2
  AND ($3::text IS NULL OR s.customer_id = $3)
GROUP BY 1 ORDER BY 2 DESC, 1
"""


async def exceptions_by_kind(conn: asyncpg.Connection, p: Period, customer: str | None) -> list[Count]:
    """Exception events (shipment type or carrier status `exception`) in the period, by exception
    code (a carrier exception without a code counts as other)."""
    return _counts(await conn.fetch(EXCEPTIONS_BY_KIND, p.start, p.end, customer))


STALE = "SELECT count(*) FROM clock_firings WHERE timer = 'stale_shipment' AND due_at >= $1 AND due_at < $2"


async def stale_shipments(conn: asyncpg.Connection, p: Period) -> int:
    """stale_shipment timers that came due in the period (once per shipment and last_event_at)."""
    return int(await conn.fetchval(STALE, p.start, p.end))


# --- tasks -------------------------------------------------------------------------------------------

TASKS_BY = """
SELECT {key} AS key, count(*) AS n FROM coordination_tasks AS t LEFT JOIN shipments AS s USING (shipment_id)
WHERE t.kind = ANY($3::text[]) AND t.opened_at >= $1 AND t.opened_at < $2 AND ($4::text IS NULL OR t.customer_id = $4)
GROUP BY 1 ORDER BY 2 DESC, 1
"""
# The grouping column is chosen from this fixed table, never from input.
COMPLAINTS_BY = {
    "cause": "t.kind",
    "carrier": "s.carrier_id",
    "customer": "t.customer_id",
    "department": "t.department",
}


async def complaints_by(conn: asyncpg.Connection, p: Period, customer: str | None, by: str) -> list[Count]:
    """Complaints of the period by cause (the task's kind: complaint, repeat contact, low satisfaction),
    by carrier (the shipment's), by customer, or by the department holding the task."""
    sql = TASKS_BY.format(key=COMPLAINTS_BY[by])
    return _counts(await conn.fetch(sql, p.start, p.end, COMPLAINT_KINDS, customer))


RESOLUTION = """
SELECT count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - opened_at)) AS median_s,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - opened_at)) AS p90_s,
       count(*) FILTER (WHERE resolved_at <= due_at) AS within_due
FROM coordination_tasks
WHERE status = 'done' AND resolved_at >= $1 AND resolved_at < $2
  AND ($3::text[] IS NULL OR kind = ANY($3::text[])) AND ($4::text IS NULL OR department = $4)
  AND ($5::text IS NULL OR customer_id = $5)
"""


async def resolution(
    conn: asyncpg.Connection, p: Period, kinds: list[str] | None, department: str | None, customer: str | None
) -> tuple[Durations, Share]:
    """Tasks resolved (done) in the period: their time to resolve (median, p90), and the share
    resolved by their due_at."""
    row = await conn.fetchrow(RESOLUTION, p.start, p.end, kinds, department, customer)
    return _durations(row), _share(row["within_due"], row["n"])


BACKLOG = """
SELECT count(*) FILTER (WHERE $1 - opened_at < interval '1 day') AS d0,
       count(*) FILTER (WHERE $1 - opened_at >= interval '1 day' AND $1 - opened_at < interval '3 days') AS d1,
       count(*) FILTER (WHERE $1 - opened_at >= interval '3 days' AND $1 - opened_at < interval '7 days') AS d3,
       count(*) FILTER (WHERE $1 - opened_at >= interval '7 days') AS d7
FROM coordination_tasks
WHERE status IN ('open', 'in_progress') AND kind = ANY($2::text[]) AND ($3::text IS NULL OR customer_id = $3)
"""


async def open_backlog(conn: asyncpg.Connection, as_of: datetime, customer: str | None) -> BacklogAge:
    """Complaints still open or in progress as of the report's time, by age since opened."""
    row = await conn.fetchrow(BACKLOG, as_of, COMPLAINT_KINDS, customer)
    return BacklogAge(under_1_day=row["d0"], days_1_to_3=row["d1"], days_3_to_7=row["d3"], over_7_days=row["d7"])


DEPARTMENTS = """
SELECT department,
       count(*) FILTER (WHERE opened_at >= $1 AND opened_at < $2) AS created,
       count(*) FILTER (WHERE breached_at >= $1 AND breached_at < $2) AS level_1,
       count(*) FILTER (WHERE escalation_level = 2 AND escalate_at >= $1 AND escalate_at < $2) AS level_2
FROM coordination_tasks
WHERE ((opened_at >= $1 AND opened_at < $2) OR (breached_at >= $1 AND breached_at < $2)
       OR (escalate_at >= $1 AND escalate_at < $2))
  AND ($3::text IS NULL OR customer_id = $3)
GROUP BY department ORDER BY department
"""


async def departments(conn: asyncpg.Connection, p: Period, customer: str | None) -> list[DepartmentKpi]:
    """Per department: tasks opened in the period; resolved in it, within SLA and handling time (see
    resolution()); breaches of level 1 (breached_at in the period) and level 2 (escalate_at in the
    period, for tasks that reached level 2)."""
    out = []
    for row in await conn.fetch(DEPARTMENTS, p.start, p.end, customer):
        handling, within = await resolution(conn, p, None, row["department"], customer)
        out.append(
            DepartmentKpi(
                department=row["department"],
                created=row["created"],
                resolved=handling.count,
                within_sla=within,
                breaches_level_1=row["level_1"],
                breaches_level_2=row["level_2"],
                handling_time=handling,
            )
        )
    return out


CLAIMS = """
SELECT count(*) FROM coordination_tasks WHERE department = 'claims' AND kind IN ('damage', 'loss', 'claim')
  AND opened_at >= $1 AND opened_at < $2 AND customer_id = $3
"""


async def claims(conn: asyncpg.Connection, p: Period, customer: str) -> int:
    """Claims opened in the period: the claims department's damage, loss and claim tasks."""
    return int(await conn.fetchval(CLAIMS, p.start, p.end, customer))


# --- contacts and surveys --------------------------------------------------------------------------------

FIRST_CONTACT = """
SELECT count(*) AS contacts,
       count(*) FILTER (WHERE NOT EXISTS (
           SELECT 1 FROM call_logs AS later
           WHERE later.shipment_id = c.shipment_id AND later.direction = 'inbound'
             AND later.category = ANY($3::text[]) AND later.event_id <> c.event_id
             AND later.occurred_at > c.occurred_at AND later.occurred_at <= c.occurred_at + $4 * interval '1 day'
       )) AS resolved_first
FROM call_logs AS c
WHERE c.direction = 'inbound' AND c.category = ANY($3::text[]) AND c.shipment_id IS NOT NULL
  AND c.occurred_at >= $1 AND c.occurred_at < $2 AND ($5::text IS NULL OR c.customer_id = $5)
"""


async def first_contact_resolution(conn: asyncpg.Connection, p: Period, customer: str | None) -> Share:
    """Inbound queries and complaints about a shipment in the period that no further inbound query
    or complaint about the same shipment followed within 7 days, over all such contacts."""
    row = await conn.fetchrow(FIRST_CONTACT, p.start, p.end, CONTACT_CATEGORIES, FIRST_CONTACT_DAYS, customer)
    return _share(row["resolved_first"], row["contacts"])


CSAT = """
SELECT count(*) AS answers, count(*) FILTER (WHERE satisfaction_score >= 4) AS satisfied
FROM call_logs
WHERE category = 'survey' AND satisfaction_score IS NOT NULL AND occurred_at >= $1 AND occurred_at < $2
  AND ($3::text IS NULL OR customer_id = $3)
"""


async def csat(conn: asyncpg.Connection, p: Period, customer: str | None) -> Share:
    """CSAT: survey answers in the period scoring 4 or 5, over all answers (the answer count)."""
    row = await conn.fetchrow(CSAT, p.start, p.end, customer)
    return _share(row["satisfied"], row["answers"])


NOTIFICATIONS = """
SELECT channel,
       count(*) FILTER (WHERE sent_at >= $1 AND sent_at < $2) AS sent,
       count(*) FILTER (WHERE failed_at >= $1 AND failed_at < $2) AS failed
FROM customer_notifications
WHERE ((sent_at >= $1 AND sent_at < $2) OR (failed_at >= $1 AND failed_at < $2))
  AND ($3::text IS NULL OR customer_id = $3)
GROUP BY channel ORDER BY channel
"""


async def notifications(conn: asyncpg.Connection, p: Period, customer: str | None) -> list[ChannelCounts]:
    """Notifications sent (sent_at in the period) and given up on (failed_at in it), by channel."""
    return [
        ChannelCounts(channel=r["channel"], sent=r["sent"], failed=r["failed"])
        for r in await conn.fetch(NOTIFICATIONS, p.start, p.end, customer)
    ]


# --- the reports ---------------------------------------------------------------------------------------

_P = ParamSpec("_P")
_R = TypeVar("_R")

# A report runs each of its queries once per customer or period. On a long-lived connection (the
# clock's, sweeping every customer's statement) Postgres switches a prepared query to a generic
# plan after five runs, one made without the period and customer: it then reads the whole month's
# events for each customer (0.4 s a statement at 20,000 shipments, `python -m bench reports`).
# A report's queries are few and each reads much more than it costs to plan: plan them for their
# values, every time. And a month-wide report groups a million shipments: at the default 4 MB of
# work_mem that spills to disk (on-time delivery: 17 batches, 64 MB of temporary files); a report
# is rare, so it may take more memory than the hub's small queries.
REPORT_SETTINGS = ("SET LOCAL plan_cache_mode = force_custom_plan", "SET LOCAL work_mem = '64MB'")


def _custom_plans(
    build: Callable[Concatenate[asyncpg.Connection, _P], Awaitable[_R]],
) -> Callable[Concatenate[asyncpg.Connection, _P], Awaitable[_R]]:
    """The report in a transaction (a savepoint inside the caller's) with REPORT_SETTINGS."""

    @functools.wraps(build)
    async def planned(conn: asyncpg.Connection, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        async with conn.transaction():
            for setting in REPORT_SETTINGS:
                await conn.execute(setting)
            return await build(conn, *args, **kwargs)

    return planned


@_custom_plans
async def complaints_report(
    conn: asyncpg.Connection, p: Period, as_of: datetime, customer: str | None = None
) -> ComplaintsReport:
    by = {key: await complaints_by(conn, p, customer, key) for key in COMPLAINTS_BY}
    total = sum(c.count for c in by["cause"])
    handled, within = await resolution(conn, p, COMPLAINT_KINDS, None, customer)
    count = await shipments(conn, p, customer)
    return ComplaintsReport(
        period=p,
        as_of=as_of,
        customer_id=customer,
        complaints=total,
        by_cause=by["cause"],
        by_carrier=by["carrier"],
        by_customer=by["customer"],
        by_department=by["department"],
        time_to_resolve=handled,
        open_backlog=await open_backlog(conn, as_of, customer),
        repeat_contacts=next((c.count for c in by["cause"] if c.key == "repeat_contact"), 0),
        shipments=count,
        per_1000_shipments=_per_1000(total, count),
        resolved_within_due=within,
    )


@_custom_plans
async def kpi_report(conn: asyncpg.Connection, p: Period, as_of: datetime, customer: str | None = None) -> KpiReport:
    count = await shipments(conn, p, customer)
    _, on_time = await deliveries(conn, p, customer)
    exceptions = sum(c.count for c in await exceptions_by_kind(conn, p, customer))
    return KpiReport(
        period=p,
        as_of=as_of,
        customer_id=customer,
        departments=await departments(conn, p, customer),
        on_time_delivery=on_time,
        shipments=count,
        exceptions=exceptions,
        exceptions_per_1000_shipments=_per_1000(exceptions, count),
        stale_shipments=await stale_shipments(conn, p),
        first_contact_resolution=await first_contact_resolution(conn, p, customer),
        csat=await csat(conn, p, customer),
        notifications=await notifications(conn, p, customer),
    )


CUSTOMER = "SELECT customer_id, name, language FROM customers WHERE customer_id = $1"


@_custom_plans
async def statement(conn: asyncpg.Connection, p: Period, as_of: datetime, customer: str) -> Statement:
    row = await conn.fetchrow(CUSTOMER, customer)
    if row is None:
        raise LookupError(f"no customer {customer!r} in the register")
    delivered, on_time = await deliveries(conn, p, customer)
    complaint_counts = await complaints_by(conn, p, customer, "cause")
    resolved, _ = await resolution(conn, p, COMPLAINT_KINDS, None, customer)
    return Statement(
        period=p,
        as_of=as_of,
        customer_id=customer,
        customer_name=row["name"],
        language=row["language"],
        shipments=await shipments(conn, p, customer),
        delivered=delivered,
        on_time=on_time,
        exceptions_by_kind=await exceptions_by_kind(conn, p, customer),
        claims=await claims(conn, p, customer),
        complaints=sum(c.count for c in complaint_counts),
        complaints_resolved=resolved.count,
        complaint_resolution=resolved,
        csat=await csat(conn, p, customer),
        shipments_per_day=await shipments_per_day(conn, p, customer),
    )


STATEMENT_CUSTOMERS = """
SELECT DISTINCT s.customer_id FROM shipment_events AS e JOIN shipments AS s USING (shipment_id)
WHERE e.status = 'created' AND e.occurred_at >= $1 AND e.occurred_at < $2 AND s.customer_id IS NOT NULL
  AND s.customer_id > $3
ORDER BY 1 LIMIT $4
"""


async def customers_with_shipments(conn: asyncpg.Connection, p: Period, after: str, limit: int) -> list[str]:
    """Customers with a shipment of the period (its `created` event in it), in id order after `after`."""
    return [r["customer_id"] for r in await conn.fetch(STATEMENT_CUSTOMERS, p.start, p.end, after, limit)]
