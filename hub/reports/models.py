"""The reports as data: what `--format json` prints (JSON Schema in schemas/json/reports/), and
what the HTML, PDF and CSV renderings show."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Report(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Period(_Report):
    """[start, end) in `timezone`; `label` is the month (2026-11) or `start..end`."""

    label: str
    start: datetime
    end: datetime
    timezone: str


class Count(_Report):
    key: str  # what is counted (a cause, a carrier, a department, ...)
    count: int


class Share(_Report):
    """A rate with what it was computed from, so a reader can check it."""

    numerator: int
    denominator: int
    percent: float | None  # None when the denominator is 0


class Durations(_Report):
    """Hours, over `count` items; None when there are none."""

    count: int
    median_hours: float | None
    p90_hours: float | None


class BacklogAge(_Report):
    under_1_day: int
    days_1_to_3: int
    days_3_to_7: int
    over_7_days: int


class ComplaintsReport(_Report):
    kind: Literal["complaints"] = "complaints"
    period: Period
    as_of: datetime
    customer_id: str | None = None
    complaints: int = Field(
        description="complaint tasks opened in the period (complaint, repeat contact, low satisfaction)"
    )
    by_cause: list[Count]
    by_carrier: list[Count]
    by_customer: list[Count]
    by_department: list[Count]
    time_to_resolve: Durations
    open_backlog: BacklogAge
    repeat_contacts: int
    shipments: int
    per_1000_shipments: float | None
    resolved_within_due: Share


class DepartmentKpi(_Report):
    department: str
    created: int
    resolved: int
    within_sla: Share
    breaches_level_1: int
    breaches_level_2: int
    handling_time: Durations


class ChannelCounts(_Report):
    channel: str
    sent: int
    failed: int


class KpiReport(_Report):
    kind: Literal["kpi"] = "kpi"
    period: Period
    as_of: datetime
    customer_id: str | None = None
    departments: list[DepartmentKpi]
    on_time_delivery: Share
    shipments: int
    exceptions: int
    exceptions_per_1000_shipments: float | None
    stale_shipments: int
    first_contact_resolution: Share
    csat: Share
    notifications: list[ChannelCounts]


class DailyCount(_Report):
    day: date
    shipments: int


class Statement(_Report):
    kind: Literal["statement"] = "statement"
    period: Period
    as_of: datetime
    customer_id: str
    customer_name: str | None
    language: Literal["zh", "en"]
    shipments: int
    delivered: int
    on_time: Share
    exceptions_by_kind: list[Count]
    claims: int
    complaints: int
    complaints_resolved: int
    complaint_resolution: Durations
    csat: Share
    shipments_per_day: list[DailyCount]


AnyReport = ComplaintsReport | KpiReport | Statement
