"""The dispatcher in `hub run` (HUB_DISPATCH_ENABLED): claim due notifications, send them through
their channels, record every try, and say loudly what could not be sent.

A round: close the call-backs whose task was closed; claim due notices (FOR UPDATE SKIP LOCKED,
leased for HUB_DISPATCH_LEASE_S, so several hubs share the work); decide each (hub/core/dispatch.py:
suppress a superseded milestone, wait out quiet hours, hand a phone notice to the call centre,
or send); send concurrently (a limit per channel, a circuit breaker per endpoint); record the
tries and their consequences in one transaction. A crash between sending and recording sends
again after the lease, with the same notification id (webhook-id, Message-ID, idempotency_key),
so receivers de-duplicate: at least once, with a stable key.

`round()` does one such round, start to end (the tests step it). `run()` pipelines the same steps
so that a notice never waits for another's send: a claimer claims whenever it is woken and has
room (at most HUB_DISPATCH_BATCH notices in flight), each send is recorded as soon as it ends,
and a recorder on its own connection writes whatever has ended since its last commit in one
transaction (group commit: one commit for many sends under load, no wait when idle).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import asyncpg
import httpx

from hub.config import Settings
from hub.core.dispatch import MILESTONE_RANK, Action, Breaker, Outcome, TryResult, next_try, plan
from hub.core.outputs import AlertDecision, TaskDecision, TaskEvent, timer_task_and_alert
from hub.core.rules import Rules
from hub.core.state import CustomerInfo
from hub.core.topics import Destinations, Queue
from hub.core.webhooks import Secret
from hub.dispatch import queries
from hub.dispatch.attachments import AttachmentError, Renderer
from hub.dispatch.email import EmailChannel
from hub.dispatch.gateway import GatewayChannel
from hub.dispatch.outgoing import Outgoing
from hub.dispatch.templates import TemplateError, render
from hub.dispatch.webhook import WebhookChannel
from hub.store.writes import write_alerts, write_tasks
from schemas.enums import CustomerTier, Department, Language, NotificationChannel, Severity

log = logging.getLogger("hub.dispatch")
FAILED_TIMER = "notification_failed"
CALL_BACK_TIMER = "call_back"
STATEMENT_PDFS_PER_ROUND = 40  # at about 0.5 s each, well within the 120 s lease on one worker


_Send = Coroutine[Any, Any, None]  # one notice's send, started as a task


class Channel(Protocol):
    async def send(self, note: Outgoing) -> TryResult: ...


@dataclass
class RoundReport:
    """What one round did, per channel."""

    sent: Counter[str] = field(default_factory=Counter)
    retried: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    suppressed: Counter[str] = field(default_factory=Counter)
    waiting: Counter[str] = field(default_factory=Counter)  # quiet hours or an open circuit
    calling: Counter[str] = field(default_factory=Counter)  # handed to the call centre
    lag_s: float = 0.0
    open_circuits: int = 0

    @property
    def handled(self) -> int:
        return sum(
            sum(c.values()) for c in (self.sent, self.retried, self.failed, self.suppressed, self.waiting, self.calling)
        )


@dataclass
class _Tried:
    note: Outgoing
    result: TryResult
    at: datetime
    duration_ms: int


@dataclass
class _Round:
    """Everything a round decided, written in one transaction."""

    now: datetime
    tried: list[_Tried] = field(default_factory=list)
    suppressed: list[Outgoing] = field(default_factory=list)
    postponed: list[tuple[Outgoing, datetime]] = field(default_factory=list)
    calls: list[tuple[Outgoing, TaskDecision]] = field(default_factory=list)
    tasks: list[TaskDecision] = field(default_factory=list)
    alerts: list[AlertDecision] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.tried or self.suppressed or self.postponed or self.calls)

    def add(self, other: _Round) -> None:
        self.tried += other.tried
        self.suppressed += other.suppressed
        self.postponed += other.postponed
        self.calls += other.calls

    def take(self, now: datetime) -> _Round:
        """What has ended so far, to record as of `now`; this one starts empty again."""
        taken = _Round(now)
        taken.add(self)
        self.tried, self.suppressed, self.postponed, self.calls = [], [], [], []
        return taken


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        rules: Rules,
        destinations: Destinations,
        on_round: Callable[[RoundReport], None] = lambda report: None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        jitter: Callable[[], float] = lambda: random.uniform(-1, 1),
    ) -> None:
        self.settings, self.rules, self.destinations = settings, rules, destinations
        self.on_round, self.now, self.jitter = on_round, now, jitter
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=settings.webhook_timeout_s,
            limits=httpx.Limits(max_connections=4 * settings.dispatch_concurrency),
        )
        self.channels: dict[str, Channel] = {
            NotificationChannel.EMAIL.value: EmailChannel(settings),
            NotificationChannel.WEBHOOK.value: WebhookChannel(self.client, settings.insecure_webhook_hosts),
            NotificationChannel.SMS.value: GatewayChannel(
                "sms", settings.sms_gateway_url, settings.sms_gateway_token, self.client
            ),
            NotificationChannel.WECHAT.value: GatewayChannel(
                "wechat", settings.wechat_gateway_url, settings.wechat_gateway_token, self.client
            ),
        }
        self.limits = {channel: asyncio.Semaphore(settings.dispatch_concurrency) for channel in self.channels}
        self.breakers: dict[str, Breaker] = {}
        self.endpoint_limits: dict[str, asyncio.Semaphore] = {}
        self.renderer = Renderer(settings.report_processes)
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        # run()'s pipeline: sends in flight (True: it renders a statement PDF), what ended and is
        # not yet recorded (kept across reconnections: a send ending while the database is away
        # is recorded once it is back).
        self._in_flight: dict[asyncio.Task[None], bool] = {}
        self._ended = _Round(datetime.now(UTC))
        self._freed = asyncio.Event()  # a send ended: room to claim
        self._to_record = asyncio.Event()  # something ended: the recorder has work
        self._lag_s = 0.0  # measured by the recorder once a poll interval

    # --- the loop ------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._freed.set()

    async def run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                await self._serve()
                delay = 0.5
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("dispatch interrupted (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay)
                await self._sleep(delay)
                delay = min(delay * 2, 10.0)
        if self._in_flight:  # stopped while the database was away: unrecorded, sent again after the lease
            await asyncio.wait(list(self._in_flight))
        await self.client.aclose()
        self.renderer.close()

    async def _serve(self) -> None:
        """Claim on one connection (which also listens for NOTIFY), record on another: a claim
        never waits for a commit, nor a commit for a claim."""
        claims = await asyncpg.connect(self.settings.dsn)
        records: asyncpg.Connection | None = None
        try:
            records = await asyncpg.connect(self.settings.dsn)
            await claims.add_listener(queries.DISPATCH_WAKE, lambda *_: self._wake.set())
            claimer = asyncio.create_task(self._claimer(claims), name="dispatch-claimer")
            await _together(claimer, asyncio.create_task(self._recorder(records, claimer), name="dispatch-recorder"))
        finally:
            for conn in (claims, records):
                if conn is not None:
                    with suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError):
                        await conn.close(timeout=2)

    async def _claimer(self, conn: asyncpg.Connection) -> None:
        batch = self.settings.dispatch_batch
        while not self._stop.is_set():
            self._wake.clear()
            room = batch - len(self._in_flight)
            if room > 0 and await self._launch(conn, room) < room:
                await self._sleep(self.settings.dispatch_poll_s, wake=True)  # all due claimed: wait for more
            else:
                await self._room(batch // 2)  # a backlog: claim again when half the batch has gone

    async def _room(self, in_flight: int) -> None:
        while len(self._in_flight) > in_flight and not self._stop.is_set():
            self._freed.clear()
            await self._freed.wait()

    async def _launch(self, conn: asyncpg.Connection, room: int) -> int:
        """Claim up to `room` due notices, decide each and start its send; what needs no send
        (suppressed, waiting, a call-back) goes to the recorder at once. Returns how many were claimed."""
        now = self.now()
        rows = await conn.fetch(queries.CLAIM, now, room, self.settings.dispatch_lease_s)  # one statement: atomic
        if not rows:
            return 0
        work = _Round(now)
        pdfs_in_flight = sum(self._in_flight.values())
        notes = self._pace_statements(await self._outgoing(conn, rows, now), work, pdfs_in_flight)
        latest = await self._latest_milestones(conn, notes)
        for note in notes:
            send = self._decide(note, latest.get(note.shipment_id or ""), work, self._ended)
            if send is not None:
                task = asyncio.create_task(send)
                self._in_flight[task] = _has_pdf(note)
                task.add_done_callback(self._sent)
        self._ended.add(work)
        if work:
            self._to_record.set()
        return len(rows)

    def _sent(self, task: asyncio.Task[None]) -> None:
        del self._in_flight[task]
        if not task.cancelled() and task.exception() is not None:
            # Not recorded: the notice comes back when its lease ends, and is tried again.
            log.error("a send failed unexpectedly", exc_info=task.exception())
        self._freed.set()
        self._to_record.set()

    async def _recorder(self, conn: asyncpg.Connection, claimer: asyncio.Task[None]) -> None:
        """Record what ended since the last commit, in one transaction; close finished call-backs
        and measure the lag once a poll interval, not on every commit. Once stopped, it goes on
        until the claimer is done and every send it started is recorded."""
        chores_at = 0.0
        while not (claimer.done() and not self._in_flight and not self._ended):
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._to_record.wait(), self.settings.dispatch_poll_s)
            self._to_record.clear()
            report = RoundReport()
            await self._record_ended(conn, report)
            if time.monotonic() >= chores_at:
                chores_at = time.monotonic() + self.settings.dispatch_poll_s
                await self._close_calls(conn, self.now(), report)
                self._lag_s = await conn.fetchval(queries.DISPATCH_LAG, self.now())
            report.lag_s = self._lag_s
            report.open_circuits = sum(1 for b in self.breakers.values() if b.is_open)
            self.on_round(report)

    async def _record_ended(self, conn: asyncpg.Connection, report: RoundReport) -> None:
        work = self._ended.take(self.now())
        if work:
            # Lost if this transaction fails (it may have committed: not tried twice); the notices
            # come back when their lease ends and go again with the same id, as after a crash.
            async with conn.transaction():
                await self._record(conn, work, report)

    async def _sleep(self, seconds: float, wake: bool = False) -> None:
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for((self._wake if wake else self._stop).wait(), seconds)

    # --- one round -----------------------------------------------------------------------------

    async def round(self, conn: asyncpg.Connection) -> RoundReport:
        now = self.now()
        report = RoundReport()
        work = _Round(now)
        await self._close_calls(conn, now, report)
        async with conn.transaction():
            rows = await conn.fetch(queries.CLAIM, now, self.settings.dispatch_batch, self.settings.dispatch_lease_s)
        if rows:
            notes = self._pace_statements(await self._outgoing(conn, rows, now), work)
            latest = await self._latest_milestones(conn, notes)
            sends = [self._decide(note, latest.get(note.shipment_id or ""), work, work) for note in notes]
            await asyncio.gather(*(s for s in sends if s is not None))
            async with conn.transaction():
                await self._record(conn, work, report)
        report.lag_s = await conn.fetchval(queries.DISPATCH_LAG, self.now())
        report.open_circuits = sum(1 for b in self.breakers.values() if b.is_open)
        return report

    def _pace_statements(self, notes: list[Outgoing], work: _Round, pdfs: int = 0) -> list[Outgoing]:
        """At most STATEMENT_PDFS_PER_ROUND statement e-mails in flight (`pdfs` already are): their
        PDFs take time to render, and a send must end well within its lease (HUB_DISPATCH_LEASE_S).
        The rest wait a round."""
        kept = []
        for note in notes:
            if _has_pdf(note):
                pdfs += 1
                if pdfs > STATEMENT_PDFS_PER_ROUND:
                    work.postponed.append((note, work.now))
                    continue
            kept.append(note)
        return kept

    def _decide(self, note: Outgoing, latest: int | None, work: _Round, sink: _Round) -> _Send | None:
        """Record a decision needing no send in `work`; return the send, whose result goes to `sink`."""
        decided = plan(note.kind, note.channel, latest, work.now, self._zone(note), note.quiet_hours)
        if decided.action is Action.SUPPRESS:
            work.suppressed.append(note)
        elif decided.action is Action.WAIT and decided.until is not None:
            work.postponed.append((note, decided.until))
        elif decided.action is Action.CALL_BACK:
            work.calls.append((note, self._call_back_task(note, work.now)))
        else:
            return self._try(note, sink)
        return None

    def _zone(self, note: Outgoing) -> ZoneInfo:
        return ZoneInfo(note.timezone) if note.timezone else self.settings.zone

    async def _try(self, note: Outgoing, work: _Round) -> None:
        """Send one notice, unless its endpoint's circuit is open. A slow or dead endpoint holds at
        most HUB_DISPATCH_ENDPOINT_CONCURRENCY of its channel's sends, so the others keep going."""
        endpoint = self._endpoint(note)
        breaker = self.breakers.setdefault(
            endpoint, Breaker(self.settings.breaker_failures, timedelta(seconds=self.settings.breaker_open_s))
        )
        slot = self.endpoint_limits.setdefault(endpoint, asyncio.Semaphore(self.settings.dispatch_endpoint_concurrency))
        async with slot:
            if not breaker.allows(self.now()):
                work.postponed.append((note, breaker.reopens_at() or self.now()))
                return
            async with self.limits[note.channel]:
                started = time.perf_counter()
                try:
                    result = await self.channels[note.channel].send(await self._attach(render(note)))
                except (TemplateError, AttachmentError) as exc:
                    result = TryResult(Outcome.FAILED, None, str(exc))
                duration = int((time.perf_counter() - started) * 1000)
            breaker.record(result.outcome, self.now())
        if breaker.is_open and result.outcome is Outcome.RETRY:
            log.warning("circuit of %s is open after %d failed tries in a row", endpoint, breaker.failures)
        work.tried.append(_Tried(note, result, self.now(), duration))

    async def _attach(self, note: Outgoing) -> Outgoing:
        """An e-mailed statement notice with its statement as PDF."""
        if not note.statement_period or note.channel != NotificationChannel.EMAIL.value:
            return note
        if note.statement is None:
            raise AttachmentError(
                f"the statement of customer {note.customer_id} for {note.statement_period} is not stored: rebuild it "
                f"with `hub report statement --customer {note.customer_id} --month {note.statement_period}`, "
                f"then `hub notifications retry {note.notification_id}`"
            )
        try:
            return replace(note, pdf=await self.renderer.statement_pdf(note.statement))
        except (ValueError, RuntimeError, OSError) as exc:  # a statement that no longer parses, a renderer gone
            raise AttachmentError(f"cannot render the statement PDF: {type(exc).__name__}: {exc}"[:300]) from None

    def _endpoint(self, note: Outgoing) -> str:
        if note.channel == NotificationChannel.WEBHOOK.value and note.webhook_url:
            return "webhook " + note.webhook_url.split("?", 1)[0]  # one breaker per endpoint URL
        return note.channel

    # --- loading -------------------------------------------------------------------------------

    async def _outgoing(self, conn: asyncpg.Connection, rows: list[asyncpg.Record], now: datetime) -> list[Outgoing]:
        customer_ids = sorted({r["customer_id"] for r in rows})
        customers = {r["customer_id"]: r for r in await conn.fetch(queries.SELECT_CUSTOMERS, customer_ids, now)}
        statements = await self._statements(conn, rows)
        notes = []
        for r in rows:
            c: dict[str, Any] = dict(customers.get(r["customer_id"]) or {})
            notes.append(
                Outgoing(
                    notification_id=r["notification_id"],
                    kind=r["kind"],
                    channel=r["channel"],
                    language=r["language"],
                    body=r["body"],
                    customer_id=r["customer_id"],
                    shipment_id=r["shipment_id"],
                    created_at=r["created_at"],
                    attempts=r["attempts"],
                    attempt_number=(r["last_attempt"] or 0) + 1,
                    customer_name=c.get("name"),
                    email=c.get("email"),
                    phone=c.get("phone"),
                    webhook_url=c.get("webhook_url"),
                    webhook_disabled=bool(c.get("webhook_disabled")),
                    timezone=c.get("timezone"),
                    quiet_hours=c.get("quiet_hours"),
                    secrets=tuple(Secret(secret) for secret in c.get("secrets") or ()),
                    extra={"tier": c.get("tier") or CustomerTier.STANDARD.value},
                    statement_period=r["statement_period"],
                    statement=statements.get((r["customer_id"], r["statement_period"])),
                )
            )
        return notes

    async def _statements(self, conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> dict[tuple[str, str], bytes]:
        wanted = [(r["customer_id"], r["statement_period"]) for r in rows if r["statement_period"]]
        if not wanted:
            return {}
        found = await conn.fetch(queries.STORED_STATEMENTS, [c for c, _ in wanted], [p for _, p in wanted])
        return {(r["customer_id"], r["period"]): bytes(r["content"]) for r in found}

    async def _latest_milestones(self, conn: asyncpg.Connection, notes: list[Outgoing]) -> dict[str, int]:
        # Only a milestone notice can be superseded (hub/core/dispatch.py): for others, no round trip.
        shipments = sorted({n.shipment_id for n in notes if n.shipment_id and n.kind in MILESTONE_RANK})
        if not shipments:
            return {}
        return {r["shipment_id"]: r["rank"] for r in await conn.fetch(queries.LATEST_MILESTONES, shipments)}

    # --- consequences --------------------------------------------------------------------------

    def _customer(self, note: Outgoing) -> CustomerInfo:
        return CustomerInfo(
            note.customer_id,
            CustomerTier(note.extra.get("tier", "standard")),
            Language(note.language),
            NotificationChannel(note.channel),
        )

    def _call_back_task(self, note: Outgoing, now: datetime) -> TaskDecision:
        rendered = render(note)
        # customer=None: a call-back is routine work of the call centre, not raised for key accounts
        tasks, _ = timer_task_and_alert(
            self.rules,
            timer=CALL_BACK_TIMER,
            subject=note.notification_id,
            key="1",
            due=now,
            now=now,
            department=Department.CALL_CENTRE.value,
            kind=CALL_BACK_TIMER,
            severity=Severity.P3,
            title=f"Call back customer {note.customer_id}: {note.kind.replace('_', ' ')}",
            queue=Queue.ESCALATIONS,
            shipment_id=note.shipment_id,
            customer=None,
            summary="",
            details={
                "notification_id": note.notification_id,
                "customer_id": note.customer_id,
                "script": rendered.text,
                "language": note.language,
            },
        )
        return tasks[0]._replace(customer_id=note.customer_id)

    def _failure(self, tried: _Tried, work: _Round) -> None:
        note = tried.note
        tasks, alert = timer_task_and_alert(
            self.rules,
            timer=FAILED_TIMER,
            subject=note.notification_id,
            key=str(note.attempt_number),
            due=tried.at,
            now=work.now,
            department=Department.CALL_CENTRE.value,
            kind=FAILED_TIMER,
            severity=Severity.P3,
            title=f"Reach customer {note.customer_id} another way: {note.kind} by {note.channel} could not be sent",
            queue=Queue.ESCALATIONS,
            shipment_id=note.shipment_id,
            customer=self._customer(note),
            summary=f"notification failed: {note.kind} to customer {note.customer_id} by {note.channel} "
            f"({tried.result.error or 'no answer'})"[:300],
            details={
                "notification_id": note.notification_id,
                "channel": note.channel,
                "error": tried.result.error,
                "status_code": tried.result.status_code,
            },
            alert_kind=FAILED_TIMER,
        )
        work.tasks += tasks
        if alert is not None:
            work.alerts.append(alert)

    async def _record(self, conn: asyncpg.Connection, work: _Round, report: RoundReport) -> None:
        sent, retry, failed = [], [], []
        for tried in work.tried:
            outcome = tried.result.outcome
            if outcome is Outcome.RETRY:
                at = next_try(
                    tried.note.attempts + 1,
                    tried.at,
                    self.jitter(),
                    tried.result.retry_after,
                    self.settings.dispatch_retry_scale,
                )
                if at is None:
                    outcome = Outcome.FAILED
                    tried = replace(
                        tried,
                        result=tried.result._replace(
                            outcome=Outcome.FAILED,
                            error=f"{tried.result.error}; no more tries after {tried.note.attempts + 1}",
                        ),
                    )
                else:
                    retry.append((tried, at))
                    report.retried[tried.note.channel] += 1
            if outcome is Outcome.SENT:
                sent.append(tried)
                report.sent[tried.note.channel] += 1
            elif outcome is Outcome.FAILED:
                failed.append(tried)
                report.failed[tried.note.channel] += 1
                self._failure(tried, work)
        # Each statement only when it has rows: most commits hold sends and nothing else.
        await _for_rows(
            conn,
            queries.RECORD_ATTEMPTS,
            [
                (
                    t.note.notification_id,
                    t.note.attempt_number,
                    t.at,
                    t.result.outcome.value,
                    t.result.status_code,
                    t.result.error,
                    t.duration_ms,
                )
                for t in [*sent, *(r for r, _ in retry), *failed]
            ],
        )
        await _for_rows(conn, queries.MARK_SENT, [(t.note.notification_id, t.at) for t in sent])
        await _for_rows(conn, queries.MARK_RETRY, [(t.note.notification_id, at, t.result.error) for t, at in retry])
        await _for_rows(conn, queries.MARK_FAILED, [(t.note.notification_id, t.at, t.result.error) for t in failed])
        gone = sorted({t.note.customer_id for t in failed if t.result.disable_webhook})
        if gone:
            await conn.execute(queries.DISABLE_WEBHOOKS, gone, work.now)
        if work.suppressed:
            await conn.execute(queries.MARK_SUPPRESSED, [n.notification_id for n in work.suppressed], work.now)
        await _for_rows(conn, queries.POSTPONE, [(n.notification_id, at) for n, at in work.postponed])
        await _for_rows(conn, queries.PARK_FOR_CALL, [(n.notification_id, t.task_id) for n, t in work.calls])
        new_tasks = work.tasks + [t for _, t in work.calls]
        await write_tasks(
            conn, new_tasks, [TaskEvent(t.task_id, work.now, "created", {"rule": t.rule}) for t in new_tasks]
        )
        await write_alerts(conn, work.alerts, self.destinations)
        for note in work.suppressed:
            report.suppressed[note.channel] += 1
        for note, _ in work.postponed:
            report.waiting[note.channel] += 1
        for note, _ in work.calls:
            report.calling[note.channel] += 1

    async def _close_calls(self, conn: asyncpg.Connection, now: datetime, report: RoundReport) -> None:
        """A call-back task done delivered its notice; cancelled, it did not (failed, with an alert)."""
        rows = await conn.fetch(queries.CALLS_CLOSED, self.settings.dispatch_batch)
        if not rows:
            return
        work = _Round(now)
        for r in rows:
            note = Outgoing(
                r["notification_id"],
                r["kind"],
                NotificationChannel.PHONE.value,
                Language.ZH.value,
                "",
                r["customer_id"],
                r["shipment_id"],
                now,
                0,
                1,
            )
            result = (
                TryResult(Outcome.SENT, None, None)
                if r["status"] == "done"
                else TryResult(
                    Outcome.FAILED, None, f"the call-back task was cancelled by {r['resolved_by'] or 'someone'}"
                )
            )
            work.tried.append(_Tried(note, result, r["resolved_at"] or now, 0))
        async with conn.transaction():
            await self._record(conn, work, report)


def _has_pdf(note: Outgoing) -> bool:
    return bool(note.statement_period) and note.channel == NotificationChannel.EMAIL.value


async def _together(*tasks: asyncio.Task[None]) -> None:
    """Wait for every task; the first to fail cancels the others, and its error is raised."""
    try:
        for ended in asyncio.as_completed(tasks):
            await ended
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _for_rows(conn: asyncpg.Connection, query: str, rows: list[tuple[Any, ...]]) -> None:
    """Run an unnest() statement over rows given as columns; for no rows, nothing (a round trip saved)."""
    if rows:
        await conn.execute(query, *(list(column) for column in zip(*rows, strict=True)))
