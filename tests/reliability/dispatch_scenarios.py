"""Dispatch's scenarios: `hub run` with HUB_DISPATCH_ENABLED sending the workload's notifications to
local receivers (peers.py) while the SMTP server is down, the dispatching hub is killed mid-send,
or one webhook endpoint answers 503 throughout.

Every customer of the workload is imported first (standard tier: no key accounts) with a channel,
an address on the local peers and, for webhooks, its own signing secret, so every notice the
events raise has somewhere to go. HUB_DISPATCH_RETRY_SCALE shrinks the contract's 5 s ... 10 h
schedule so that it runs its course within the scenario; the oracle (dispatchcheck.py) compares
`customer_notifications` and `notification_attempts` with what the receivers got.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import orjson
from pydantic import SecretStr

from hub.ops.customers import create_webhook_secret, import_customers
from schemas.customers import Customer
from tests.reliability import harness
from tests.reliability.checker import Findings, read_topics
from tests.reliability.dispatchcheck import (
    Address,
    DispatchReport,
    judge_dispatch,
    pending_notices,
    read_dispatch_state,
    schedule_s,
)
from tests.reliability.generator import Ledger, WorkloadSpec, customer_pool, generate
from tests.reliability.harness import HubFleet
from tests.reliability.peers import SMS_PATH, HttpPeer, MailPeer
from tests.reliability.publisher import Publisher
from tests.reliability.scenarios import Context, Oracle, Outcome, Run, course, wait_progress

MAIL_DOMAIN = "hub.example"
GATEWAY_TOKEN = "gateway-token-rel"
DEAD_PATH = "/hooks/dead-integration"  # one endpoint several customers' webhooks point at


@dataclass
class Peers:
    mail: MailPeer
    http: HttpPeer
    addresses: dict[str, Address]

    @property
    def receipts(self) -> list:
        return [*self.mail.receipts, *self.http.receipts]

    async def stop(self) -> None:
        self.mail.stop()
        await self.http.stop()


async def start_peers(
    dsn: str, customers: list[str], channel_of: Callable[[int], str], http: HttpPeer, mail: MailPeer
) -> Peers:
    """Start the receivers and import the customers, each with its channel and address there."""
    mail.start()
    await http.start()
    rows, addresses = [], {}
    for i, customer_id in enumerate(customers):
        channel = channel_of(i)
        fields = {"customer_id": customer_id, "preferred_channel": channel, "language": "en" if i % 3 == 0 else "zh"}
        if channel == "email":
            address = Address("email", email=f"{customer_id.lower()}@customers.example")
            fields["email"] = address.email
        elif channel == "sms":
            address = Address("sms", phone=f"+86 139 {i:04d} {i * 7 % 10000:04d}")
            fields.update(phone=address.phone, quiet_hours="00:00-00:00")  # never quiet: the drill runs any hour
        else:
            path = DEAD_PATH if channel == "dead" else f"/hooks/{customer_id}"
            address = Address("webhook", path=path)
            fields.update(preferred_channel="webhook", webhook_url=http.url(path))
        rows.append(Customer.model_validate(fields))
        addresses[customer_id] = address
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await import_customers(conn, rows)
        for customer_id, address in addresses.items():
            if address.channel == "webhook":
                secret = await create_webhook_secret(conn, customer_id, rotate=False)
                http.secrets.setdefault(address.path, []).append(secret)
    finally:
        await conn.close()
    return Peers(mail, http, addresses)


def dispatch_settings(ctx: Context, dsn: str, peers: Peers, retry_scale: float, **overrides):
    return harness.scenario_settings(
        ctx.services.broker.bootstrap,
        dsn,
        dispatch_enabled=True,
        dispatch_retry_scale=retry_scale,
        smtp_host="127.0.0.1",
        smtp_port=peers.mail.port,
        smtp_starttls=False,
        smtp_from=f"service@{MAIL_DOMAIN}",
        sms_gateway_url=peers.http.url(SMS_PATH),
        sms_gateway_token=SecretStr(GATEWAY_TOKEN),
        webhook_insecure_hosts="127.0.0.1",
        **overrides,
    )


def dispatch_oracle(
    ctx: Context,
    peers: Peers,
    retry_scale: float,
    settle_s: float,
    dead: frozenset[str] = frozenset(),
    copies_allowed: bool = True,
) -> tuple[Oracle, dict]:
    """Wait until no notice is pending (or `settle_s`), then judge dispatch (dispatchcheck.py)."""
    seen: dict = {}

    async def settle(run: Run) -> None:
        deadline = time.monotonic() + settle_s
        left = -1
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                left = await pending_notices(run.dsn)
                if left == 0:
                    return
            await asyncio.sleep(0.5)
        ctx.stall(f"dispatch: {left} notices still pending {settle_s:.0f}s after the lag reached zero")

    async def judge(run: Run, findings: Findings) -> None:
        await asyncio.sleep(0.5)  # a receipt still being written by a receiver
        state = await read_dispatch_state(run.dsn, list(run.settings.alert_topics))
        topic = [orjson.loads(r.value) for r in await read_topics(run.settings, list(run.settings.alert_topics))]
        report = judge_dispatch(
            findings,
            state,
            peers.receipts,
            peers.addresses,
            [d for d in topic if "timer" in (d.get("source") or {})],
            domain=MAIL_DOMAIN,
            retry_scale=retry_scale,
            dead=dead,
        )
        ctx.notes.append(report.summary())
        if report.copies and not copies_allowed:
            ctx.failures.append(f"{report.copies} notices received more than once without a crash")
        if report.suppressed_received:
            text = f"{report.suppressed_received} suppressed notices were received all the same"
            (ctx.notes if copies_allowed else ctx.failures).append(
                text + (" (sent before a kill)" if copies_allowed else "")
            )
        ctx.extra["dispatch"] = {
            "statuses": dict(report.statuses),
            "channels": dict(report.channels),
            "receipts": report.receipts,
            "copies": report.copies,
            "max_delay_s": round(report.max_delay_s, 2),
        }
        seen["report"] = report

    return Oracle(settle, judge), seen


def _spec(events: int) -> WorkloadSpec:
    return WorkloadSpec(events, incident_share=0.3)


# --- 16. SMTP down ------------------------------------------------------------------------------------


async def dispatch_smtp_down(ctx: Context) -> Outcome:
    """The SMTP server stopped for 60 s mid-run while e-mail notices keep coming: afterwards every one
    is sent, received once under its own Message-ID, none failed."""
    events, rate, down_s = ctx.pick((800, 30, 60), (6000, 60, 60))
    scale, breaker_s = 0.002, 20.0  # schedule 5 s .. 10 h -> 10 ms .. 72 s (127 s in all)
    spec = _spec(events)
    dsn = await ctx.services.database(ctx.name)
    peers = await start_peers(
        dsn, customer_pool(ctx.seed, spec), lambda i: "webhook" if i % 5 == 0 else "email", HttpPeer(), MailPeer()
    )
    try:

        async def plan(fleet: HubFleet, publisher: Publisher) -> None:
            await wait_progress(ctx, dsn, "after start")
            await _wait_receipts(peers.mail, 20, 30)
            peers.mail.stop()
            before = len(peers.mail.receipts)
            ctx.fault(f"SMTP server stopped for {down_s}s ({before} e-mails received so far)")
            await asyncio.sleep(down_s)
            peers.mail.start()
            ctx.fault("SMTP server back on its port")

        oracle, _ = dispatch_oracle(ctx, peers, scale, settle_s=3 * breaker_s + 60, copies_allowed=False)
        settings = dispatch_settings(ctx, dsn, peers, scale, breaker_open_s=breaker_s)
        outcome = await course(ctx, settings, dsn, generate(ctx.seed, spec), rate, plan, oracle=oracle)
    finally:
        await peers.stop()
    outcome.notes.append(f"retry scale {scale} (schedule {schedule_s(scale):.0f}s), breaker open {breaker_s:.0f}s")
    return outcome


async def _wait_receipts(peer, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(peer.receipts) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


# --- 17. kill mid-send -------------------------------------------------------------------------------------


def _mixed(i: int) -> str:
    return ("email", "webhook", "email", "webhook", "sms")[i % 5]


async def dispatch_kill_mid_send(ctx: Context) -> Outcome:
    """SIGKILL the dispatching hub again and again while receivers hold its sends (they record a
    delivery, then answer 0.3 s later); the lease (HUB_DISPATCH_LEASE_S=15, its minimum) returns the
    killed hub's claimed notices. Every notice arrives at least once and every copy under the
    notice's own id. A control run of the same mix without kills must have no copies at all."""
    events, rate, kills = ctx.pick((800, 25, 5), (6000, 50, 15))
    scale, lease_s, hold_s = 0.002, 15.0, 0.3
    control = await _control_run(ctx, ctx.pick(300, 2000), scale, hold_s)
    spec = _spec(events)
    dsn = await ctx.services.database(ctx.name)
    http = HttpPeer(answer=lambda path: (200, hold_s))
    peers = await start_peers(dsn, customer_pool(ctx.seed, spec), _mixed, http, MailPeer(delay_s=hold_s))
    landed = 0
    try:

        async def plan(fleet: HubFleet, publisher: Publisher) -> None:
            nonlocal landed
            hub = fleet.members[0]
            await wait_progress(ctx, dsn, "after start")
            for _ in range(kills):
                await asyncio.sleep(3.0)
                before = len(peers.receipts)
                if await _wait_receipts_after(peers, before, 10.0):
                    await asyncio.sleep(hold_s / 3)  # inside the receiver's hold: sent, not yet answered
                    landed += 1
                await hub.kill()
                ctx.fault(f"SIGKILL {hub.name} ({len(peers.receipts)} deliveries so far)")
                hub = fleet.spawn()
            ctx.notes.append(f"{kills} SIGKILLs, {landed} while a delivery was held by its receiver")

        oracle, seen = dispatch_oracle(ctx, peers, scale, settle_s=lease_s + 90, copies_allowed=True)
        settings = dispatch_settings(ctx, dsn, peers, scale, dispatch_lease_s=lease_s)
        outcome = await course(ctx, settings, dsn, generate(ctx.seed, spec), rate, plan, oracle=oracle)
    finally:
        await peers.stop()
    report: DispatchReport | None = seen.get("report")
    if report is not None:
        outcome.notes.append(f"{report.copies} copies after {kills} kills, each under its notice's id")
    outcome.failures.extend(f"control run: {v}" for v in control.findings.violations() + control.failures)
    outcome.stalls.extend(f"control run: {v}" for v in control.findings.backlog() + control.stalls)
    outcome.notes.append(f"control run without kills: {'; '.join(control.notes)}")
    outcome.extra["control"] = control.extra
    return outcome


async def _wait_receipts_after(peers: Peers, before: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(peers.receipts) > before:
            return True
        await asyncio.sleep(0.01)
    return False


async def _control_run(ctx: Context, events: int, scale: float, hold_s: float) -> Outcome:
    """The same mix and receivers, no faults: every notice must arrive exactly once."""
    sub = Context(f"{ctx.name}_control", ctx.size, ctx.services, ctx.folder / "control", ctx.seed + 100)
    sub.folder.mkdir(parents=True, exist_ok=True)
    spec = _spec(events)
    dsn = await ctx.services.database(sub.name)
    peers = await start_peers(
        dsn, customer_pool(sub.seed, spec), _mixed, HttpPeer(answer=lambda path: (200, hold_s)), MailPeer(hold_s)
    )
    try:
        oracle, _ = dispatch_oracle(sub, peers, scale, settle_s=60, copies_allowed=False)
        settings = dispatch_settings(sub, dsn, peers, scale)
        ledger: Ledger = generate(sub.seed, spec)
        return await course(sub, settings, dsn, ledger, rate=ctx.pick(60, 120), plan=None, oracle=oracle)
    finally:
        await peers.stop()


# --- 18. one endpoint down -------------------------------------------------------------------------------------


async def dispatch_endpoint_down(ctx: Context) -> Outcome:
    """One webhook endpoint (the integration a twelfth of the customers use) answers 503, slowly
    (DEAD_ANSWER_S), for the whole run: its notices fail after the whole scaled schedule, each with one
    notification_failed task (call_centre) and one alert; once its breaker is open it gets one try
    per open period, and every other notice is sent within SLOW_NOTICE_S (see below)."""
    events, rate = ctx.pick((800, 30), (6000, 60))
    scale, breaker_s = 0.001, BREAKER_OPEN_S  # schedule 5 s .. 10 h -> 5 ms .. 36 s (63 s in all)
    spec = _spec(events)
    dsn = await ctx.services.database(ctx.name)

    dead_customers = ctx.pick(8, 16)  # each has its notices tried once a breaker period: keep them few

    def channel_of(i: int) -> str:
        if i % 12 == 5 and i // 12 < dead_customers:
            return "dead"
        return ("webhook", "email", "webhook", "sms")[i % 4]

    http = HttpPeer(answer=lambda path: (503, DEAD_ANSWER_S) if path == DEAD_PATH else (200, 0.0))
    peers = await start_peers(dsn, customer_pool(ctx.seed, spec), channel_of, http, MailPeer())
    dead = frozenset(c for c, a in peers.addresses.items() if a.path == DEAD_PATH)
    try:
        oracle, seen = dispatch_oracle(
            ctx, peers, scale, settle_s=schedule_s(scale) * 1.1 + ctx.pick(150, 400), dead=dead, copies_allowed=False
        )
        settings = dispatch_settings(ctx, dsn, peers, scale, breaker_open_s=breaker_s)
        outcome = await course(ctx, settings, dsn, generate(ctx.seed, spec), rate, None, oracle=oracle)
    finally:
        await peers.stop()
    report: DispatchReport | None = seen.get("report")
    if report is not None:
        _judge_isolation(outcome, report, [r.at for r in http.receipts if r.path == DEAD_PATH], len(dead))
    return outcome


# What the breaker must do, and the bound on the others' delay. A round sends what it claimed
# concurrently and records the results when the last send is back, so a due notice waits for the
# round in progress and goes out in the next. Once the breaker has opened (HUB_BREAKER_FAILURES
# answers in a row, each DEAD_ANSWER_S late), the dead endpoint gets one probe per open period: two
# of its tries are never closer than that period (PROBE_GAP_S allows for the receiver seeing the
# earlier one late), so a round waits for at most one DEAD_ANSWER_S. Without the breaker, every
# round would try every due notice of the dead endpoint, HUB_DISPATCH_ENDPOINT_CONCURRENCY at a
# time, in bursts. A healthy notice then waits for its batch's transaction (created_at is its
# start) and at most two rounds (each HUB_DISPATCH_POLL_S + DEAD_ANSWER_S + its sends): well under
# a second on an idle host; SLOW_NOTICE_S leaves room for a loaded 2-core host, where one batch's
# transaction was seen to take 4 s. Seconds are liveness (a stall), the probe spacing is not.
DEAD_ANSWER_S = 0.3
BREAKER_OPEN_S = 0.5
PROBE_GAP_S = 0.25
BREAKER_FAILURES = 5  # HUB_BREAKER_FAILURES (default)
SLOW_NOTICE_S = 15.0


def _judge_isolation(outcome: Outcome, report: DispatchReport, dead_tries: list, dead_customers: int) -> None:
    dead_tries = sorted(dead_tries)
    # The breaker is open once the fifth answer is back: later requests are probes.
    opened = (
        dead_tries[BREAKER_FAILURES - 1] + timedelta(seconds=DEAD_ANSWER_S + 0.2)
        if len(dead_tries) >= BREAKER_FAILURES
        else None
    )
    probes = [t for t in dead_tries if opened and t > opened]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(probes)]
    close = [g for g in gaps if g < PROBE_GAP_S]
    outcome.notes.append(
        f"{dead_customers} customers behind the dead endpoint: {len(dead_tries)} tries reached it, "
        f"{len(probes)} after its breaker opened, at least {min(gaps, default=0):.2f}s apart; other notices: "
        f"created->received p50 {statistics.median(report.delays_s or [0]):.2f}s, max {report.max_delay_s:.2f}s"
    )
    if close:
        outcome.failures.append(
            f"the open breaker let {len(close)} tries reach the dead endpoint less than {PROBE_GAP_S}s after "
            "the previous one"
        )
    if report.max_delay_s > SLOW_NOTICE_S:
        outcome.stalls.append(
            f"a healthy notice took {report.max_delay_s:.1f}s to its receiver (bound {SLOW_NOTICE_S:.0f}s)"
        )
    if not report.statuses.get("failed"):
        outcome.failures.append("no notice of the dead endpoint failed")


__all__ = ["dispatch_endpoint_down", "dispatch_kill_mid_send", "dispatch_smtp_down"]
