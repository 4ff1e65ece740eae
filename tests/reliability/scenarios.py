"""The scenarios of the scorecard. Each returns an `Outcome`; runner.py judges and reports it.

The eleven below exercise the event path; clock_scenarios.py and dispatch_scenarios.py add seven
for the clock and notification dispatch, on the same course (registered at the end of this file).

Every scenario publishes a generated ledger (generator.py) to its own topics while `hub run`
processes (subprocesses, as in production) consume them into its own database, injects its
faults, then measures recovery and runs the checker. Invariants checked by all of them: no
loss, exactly-once effects, every expected alert_id on its queue, per-shipment order (final
sheet = events applied in occurred_at order), dead letters exactly the hostile messages, and
recovery (lag near zero within 60 s after the last fault ended). Scenario-specific checks add
to `ctx.failures` (a broken contract: never cleared by a re-run) or, when the hub is only slow or
stuck (no progress, lag not zero, outbox not drained), to `ctx.stalls` (liveness: runner.py may
re-run the scenario, and prints the stall as a flake if the re-run passes).

Sizes: `smoke` (CI, all scenarios together in a few minutes on 2 cores: short fault windows,
1,000-3,000 events) and `full` (20,000-50,000 events, the issue's fault durations).

Tansu facts that shape the timings: a consumer-group join takes ~4-5 s, and a SIGKILLed member
keeps its partitions until its session timeout (6 s here), so a restarted hub resumes ~10 s
after a SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import orjson
from pydantic import SecretStr

from hub.dev.embedded import free_port
from hub.kafka import aiokafka_kwargs, ensure_topics
from hub.migrate import apply_migrations
from tests.reliability import harness
from tests.reliability.checker import Committed, Findings, check, read_topics
from tests.reliability.faultproxy import FaultProxy
from tests.reliability.generator import (
    CANARY_NAME,
    CANARY_PHONE,
    CANARY_PHONE_DIGITS,
    Ledger,
    WorkloadSpec,
    generate,
)
from tests.reliability.harness import HubFleet, HubProcess, LagProbe, Services
from tests.reliability.publisher import Publisher

RECOVERY_WINDOW_S = 60.0  # everything published before the last fault ended must be committed this soon
SETTLE_S = 120.0  # after publishing: time allowed to commit everything and empty the outbox
PROGRESS_TIMEOUT_S = 60.0
GROUP_TROUBLE = re.compile(
    r"UnknownMemberId|IllegalGeneration|RebalanceInProgress|NotCoordinator|"
    r"CoordinatorNotAvailable|UNKNOWN_MEMBER_ID|Heartbeat session expired|"
    r"OffsetCommit failed|CommitFailedError",
    re.I,
)
BATCH_LINE = re.compile(r"batch: (\d+) records, (\d+) processed, (\d+) duplicates")  # the hub's log line
KAFKA_PASSWORD_CANARY = "kafka-canary-pw-7f3a9c21"
DB_PASSWORD_CANARY = "db-canary-pw-4e1b8d55"
ROLES_SCRIPT = harness.REPO_ROOT / "deploy" / "postgres-init" / "hub-roles.psql"


# --- the context a scenario runs in and what it returns ---------------------------------------------


@dataclass
class Context:
    name: str
    size: str
    services: Services
    folder: Path
    seed: int
    t0: float = field(default_factory=time.monotonic)
    faults: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stalls: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def full(self) -> bool:
        return self.size == "full"

    def pick(self, smoke, full):
        return full if self.full else smoke

    def stall(self, text: str) -> None:
        """A liveness failure: work not done in time, nothing lost or doubled by it."""
        self.stalls.append(text)

    def fault(self, text: str) -> None:
        self.faults.append(f"+{time.monotonic() - self.t0:6.1f}s {text}")

    def rng(self) -> random.Random:
        return random.Random(self.seed * 7919 + 17)


@dataclass
class Outcome:
    workload: dict
    findings: Findings
    faults: list[str]
    recovery_s: float | None
    stuck: dict[str, int]
    failures: list[str]
    notes: list[str]
    extra: dict
    group_trouble: list[str]
    stalls: list[str] = field(default_factory=list)  # liveness failures (Context.stall)


# A plan injects the faults and returns when the last one ended, optionally with an aftermath: a
# coroutine that goes on observing (e.g. a zombie's late work) while recovery is being measured.
FaultPlan = Callable[[HubFleet, Publisher], Awaitable[Awaitable[None] | None]]


# --- the common course of a scenario ------------------------------------------------------------------


@dataclass
class Run:
    ctx: Context
    settings: object
    dsn: str
    ledger: Ledger
    fleet: HubFleet
    probe: LagProbe
    publisher: Publisher
    publishing: asyncio.Task | None = None
    recovery_s: float | None = None
    stuck: dict[str, int] = field(default_factory=dict)


async def begin(
    ctx: Context, settings, dsn: str, ledger: Ledger, rate: float | None, hubs: int = 1, spawn: list | None = None
) -> Run:
    """`spawn`: each hub's own settings (e.g. its own /metrics port) instead of `hubs` alike."""
    await ensure_topics(settings)
    run = Run(
        ctx,
        settings,
        dsn,
        ledger,
        HubFleet(settings, ctx.folder),
        await LagProbe(settings, settings.consumer_group).start(),
        Publisher(settings, ledger, rate),
    )
    for hub_settings in spawn or [None] * hubs:
        run.fleet.spawn(hub_settings)
    run.publishing = asyncio.create_task(run.publisher.run(), name=f"publish-{ctx.name}")
    return run


@dataclass
class Oracle:
    """A scenario's own oracle beside the event checker (the clock's, dispatch's): what to wait for
    once the group has committed everything (before the outbox must be empty), and what to judge
    after the checker. With one, the checker leaves timers' tasks and alerts to it."""

    settle: Callable[[Run], Awaitable[None]] | None = None
    judge: Callable[[Run, Findings], Awaitable[None]] | None = None


async def recover_and_check(
    run: Run, faults_ended: bool, aftermath: Awaitable[None] | None = None, oracle: Oracle | None = None
) -> Findings:
    """Recovery: the group commits everything published before the last fault ended (or, without
    faults, before publishing ended) within RECOVERY_WINDOW_S. Then settle (everything published
    and committed, the scenario's own oracle's wait, outbox sent) and check."""
    ctx = run.ctx
    if not faults_ended:
        await _publishing_done(run)
    recovery = run.probe.wait_caught_up(RECOVERY_WINDOW_S)
    if aftermath is not None:
        (run.recovery_s, run.stuck), _ = await asyncio.gather(recovery, aftermath)
    else:
        run.recovery_s, run.stuck = await recovery
    if run.recovery_s is None:
        ctx.stall(f"not caught up {RECOVERY_WINDOW_S:.0f}s after the fault: {_behind(run.stuck)}")
    await _publishing_done(run)
    # A hub that did not recover within the window gets a short grace, not another full wait.
    grace = SETTLE_S if run.recovery_s is not None else 15.0
    settle_s, behind = await run.probe.wait_caught_up(grace)
    if settle_s is None:
        ctx.stall(f"lag not zero {grace:.0f}s after publishing ended: {_behind(behind)}")
        run.stuck = run.stuck or behind
    if oracle is not None and oracle.settle is not None:
        await oracle.settle(run)
    if not await harness.wait_outbox_sent(run.dsn, 60):
        ctx.stall("outbox not drained within 60 s")
    _write_ledger(run)
    # Committed offsets first: whatever the group had passed by then is in the state read next.
    committed = await _committed(run.probe)
    findings = await check(run.ledger, run.settings, run.dsn, committed, timers=oracle is not None)
    if oracle is not None and oracle.judge is not None:
        await oracle.judge(run, findings)
    return findings


async def _committed(probe: LagProbe) -> Committed | None:
    """What the group has committed past: per partition the highest committed offset the probe ever
    read (a lower answer later cannot make a loss look like work still to do). None if the broker
    does not answer now: then every missing event counts as lost, none as merely unseen."""
    for _ in range(5):
        if await probe.positions() is not None:
            return {(tp.topic, tp.partition): offset for tp, offset in probe.high.items()}
        await asyncio.sleep(1)
    return None


def _behind(stuck: dict[str, int]) -> str:
    """A short summary; the partitions themselves are in the JSON (stuck_partitions)."""
    return f"{len(stuck)} partitions stuck, {sum(stuck.values())} records behind"


async def _publishing_done(run: Run) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(run.publishing), timeout=600)
    except Exception as exc:  # noqa: BLE001 - reported as a failure of the scenario
        run.ctx.stall(f"publisher failed: {type(exc).__name__}: {exc}")


def _write_ledger(run: Run) -> None:
    path = run.ctx.folder / "ledger.jsonl"
    with open(path, "wb") as out:
        for row in run.ledger.rows():
            out.write(orjson.dumps(row, default=str) + b"\n")
    run.ctx.extra["ledger_file"] = str(path)


async def finish(run: Run, findings: Findings) -> Outcome:
    await run.fleet.stop_all()
    await run.probe.stop()
    if run.publishing and not run.publishing.done():
        run.publishing.cancel()
    exits = [m.proc.returncode for m in run.fleet.members]
    logs = run.fleet.logs()
    batches = [tuple(map(int, m.groups())) for m in BATCH_LINE.finditer(logs)]
    run.ctx.extra.update(
        hub_processes=len(run.fleet.members),
        exit_codes=exits,
        publisher_retries=run.publisher.retries,
        publish_s=round(run.publisher.finished_at - run.publisher.started_at, 1),
        # re-delivered records the inbox turned into no-ops (kills between the Postgres
        # commit and the offset commit, rebalances, re-published copies)
        hub_batches=len(batches),
        duplicates_skipped=sum(b[2] for b in batches),
    )
    if run.ctx.extra["duplicates_skipped"]:
        run.ctx.notes.append(f"{run.ctx.extra['duplicates_skipped']} re-delivered records skipped by the inbox")
    trouble = sorted({m.group(0) for m in GROUP_TROUBLE.finditer(logs)})
    return Outcome(
        run.ledger.summary(),
        findings,
        run.ctx.faults,
        run.recovery_s,
        run.stuck,
        run.ctx.failures,
        run.ctx.notes,
        run.ctx.extra,
        trouble,
        run.ctx.stalls,
    )


async def standard(
    ctx: Context,
    spec: WorkloadSpec,
    rate: float | None,
    plan: FaultPlan | None = None,
    hubs: int = 1,
    settings_overrides: dict | None = None,
    dsn: str | None = None,
) -> Outcome:
    dsn = dsn or await ctx.services.database(ctx.name)
    settings = harness.scenario_settings(ctx.services.broker.bootstrap, dsn, **(settings_overrides or {}))
    return await course(ctx, settings, dsn, generate(ctx.seed, spec), rate, plan, hubs)


async def course(
    ctx: Context,
    settings,
    dsn: str,
    ledger: Ledger,
    rate: float | None,
    plan: FaultPlan | None,
    hubs: int = 1,
    oracle: Oracle | None = None,
    spawn: list | None = None,
) -> Outcome:
    """Publish the ledger to `hubs` hub processes, run the fault plan, measure recovery, check."""
    run = await begin(ctx, settings, dsn, ledger, rate, hubs, spawn)
    try:
        aftermath = await plan(run.fleet, run.publisher) if plan is not None else None
        findings = await recover_and_check(run, faults_ended=plan is not None, aftermath=aftermath, oracle=oracle)
    except BaseException:
        await run.fleet.stop_all(timeout=5)
        await run.probe.stop()
        run.publishing.cancel()
        raise
    return await finish(run, findings)


async def wait_progress(ctx: Context, dsn: str, what: str, total: int | None = None) -> int:
    """Wait until the inbox grows; returns its size then (a stall is recorded if it never does).
    `total`: the events the ledger stores; once the inbox holds them all there is nothing left to
    make progress on (a loaded host may have a restarted hub find the work done)."""
    before = await harness.inbox_count(dsn)
    if total is not None and before >= total:
        return before
    if not await harness.wait_progress(dsn, before, PROGRESS_TIMEOUT_S):
        ctx.stall(f"no progress within {PROGRESS_TIMEOUT_S:.0f}s {what}")
    return await harness.inbox_count(dsn)


# --- 1. crash loop ----------------------------------------------------------------------------------


async def crash_loop(ctx: Context) -> Outcome:
    """SIGKILL the hub 2-3 s into its processing, again and again, restarting it at once."""
    events, rate, kills = ctx.pick((2000, 60, 2), (20000, 120, 10))
    rng = ctx.rng()
    dsn = await ctx.services.database(ctx.name)

    async def plan(fleet: HubFleet, publisher: Publisher) -> None:
        hub = fleet.members[0]
        for n in range(kills):
            await wait_progress(ctx, dsn, f"after start {n + 1}", total=events)
            await asyncio.sleep(rng.uniform(2.0, 3.0))
            at = await harness.inbox_count(dsn)
            await hub.kill()
            ctx.fault(f"SIGKILL {hub.name} (inbox {at}/{events}), restarted at once")
            hub = fleet.spawn()
        ctx.notes.append(f"{kills} SIGKILLs")

    return await standard(ctx, WorkloadSpec(events), rate, plan, dsn=dsn)


# --- 2. graceful stop ---------------------------------------------------------------------------------


async def graceful_stop(ctx: Context) -> Outcome:
    """SIGTERM mid-batch repeatedly: each stop exits 0 within HUB_GRACEFUL_TIMEOUT_S."""
    events, rate, stops = ctx.pick((2000, 60, 3), (15000, 150, 10))
    graceful_s = 10.0
    rng = ctx.rng()
    dsn = await ctx.services.database(ctx.name)
    stop_times: list[float] = []

    async def plan(fleet: HubFleet, publisher: Publisher) -> None:
        hub = fleet.members[0]
        for n in range(stops):
            await wait_progress(ctx, dsn, f"after start {n + 1}", total=events)
            await asyncio.sleep(rng.uniform(1.0, 2.5))
            rc, took = await hub.terminate(graceful_s + 10)
            stop_times.append(round(took, 2))
            ctx.fault(f"SIGTERM {hub.name}: exit {rc} after {took:.1f}s")
            if rc != 0 or took > graceful_s:
                ctx.failures.append(
                    f"{hub.name} stopped with exit {rc} after {took:.1f}s "
                    f"(must exit 0 within HUB_GRACEFUL_TIMEOUT_S={graceful_s:.0f}s)"
                )
            if rc is None:
                await hub.kill()
            hub = fleet.spawn()
        ctx.notes.append(f"{stops} SIGTERMs, slowest exit {max(stop_times):.1f}s")
        ctx.extra["stop_seconds"] = stop_times

    return await standard(
        ctx, WorkloadSpec(events), rate, plan, dsn=dsn, settings_overrides={"graceful_timeout_s": graceful_s}
    )


# --- 3. scale-out and churn -------------------------------------------------------------------------------


async def scale_churn(ctx: Context) -> Outcome:
    """Three hubs in one group on 6 partitions; every 5 s one is SIGKILLed, SIGTERMed or added."""
    events, rate, actions = ctx.pick((3000, 80, 5), (25000, 170, 24))
    rng = ctx.rng()
    dsn = await ctx.services.database(ctx.name)
    done: list[str] = []

    async def plan(fleet: HubFleet, publisher: Publisher) -> None:
        await wait_progress(ctx, dsn, "after the first start")
        for _ in range(actions):
            await asyncio.sleep(5.0)
            running = fleet.running
            action = (
                "add"
                if len(running) <= 1
                else rng.choice(("kill", "term"))
                if len(running) >= 4
                else rng.choice(("add", "kill", "term"))
            )
            if action == "add":
                hub = fleet.spawn()
            else:
                hub = rng.choice(running)
                if action == "kill":
                    await hub.kill()
                else:
                    hub.proc.send_signal(15)  # SIGTERM; it leaves the group while we go on
            done.append(action)
            ctx.fault(f"{action} {hub.name} ({len(fleet.running)} running)")
        if not fleet.running:
            fleet.spawn()
        ctx.notes.append(f"{done.count('add')} added, {done.count('kill')} SIGKILLed, {done.count('term')} SIGTERMed")

    return await standard(
        ctx, WorkloadSpec(events), rate, plan, hubs=3, dsn=dsn, settings_overrides={"topic_partitions": 6}
    )


# --- 4. zombie ---------------------------------------------------------------------------------------


async def zombie(ctx: Context) -> Outcome:
    """SIGSTOP a hub past its session timeout while its peer takes over, then SIGCONT it."""
    events, rate, pauses = ctx.pick((2400, 70, 1), (10000, 100, 3))
    session_s = 6.0
    dsn = await ctx.services.database(ctx.name)

    async def plan(fleet: HubFleet, publisher: Publisher):
        a, b = fleet.members
        both = await harness.wait_for(lambda: _async_true(a.log_count("batch:") and b.log_count("batch:")), 60)
        if not both:
            ctx.notes.append("only one hub got partitions before the pause")
        observe = None
        for n in range(pauses):
            if observe is not None:
                await observe  # the previous pause's observation, before the next pause
            await asyncio.sleep(1.0)
            before = await harness.inbox_count(dsn)
            a.pause()
            ctx.fault(f"SIGSTOP {a.name} for {session_s + 6:.0f}s (session timeout {session_s:.0f}s)")
            await asyncio.sleep(session_s + 6)
            during = await harness.inbox_count(dsn) - before
            observe = watch_zombie(a, n + 1, during)
            a.resume()
            ctx.fault(f"SIGCONT {a.name}; the peer stored {during} events meanwhile")
        return observe

    async def watch_zombie(a: HubProcess, n: int, during: int) -> None:
        resumed_at = len(a.log_text())
        await asyncio.sleep(8)
        ctx.notes.append(f"pause {n}: peer stored {during} meanwhile; {zombie_work(a.log_text()[resumed_at:])}")
        if not a.alive:
            ctx.failures.append(f"{a.name} died after SIGCONT (exit {a.proc.returncode})")

    return await standard(
        ctx,
        WorkloadSpec(events),
        rate,
        plan,
        hubs=2,
        dsn=dsn,
        # DEBUG: the per-batch lines zombie_work counts (INFO has only the 10 s summaries)
        settings_overrides={
            "topic_partitions": 6,
            "kafka_session_timeout_ms": int(session_s * 1000),
            "log_level": "DEBUG",
        },
    )


async def _async_true(value) -> bool:
    return bool(value)


def zombie_work(log_after_resume: str) -> str:
    """What the resumed hub did before it rejoined: its late batches and whether its commits were refused."""
    late = log_after_resume.split("partitions assigned", 1)[0]
    batches = [tuple(map(int, m.groups())) for m in BATCH_LINE.finditer(late)]
    refused = late.count("offsets not committed")
    records, stored, dupes = (sum(b[i] for b in batches) for i in range(3))
    return (
        f"zombie's late work: {len(batches)} batches, {records} records ({stored} stored, {dupes} duplicates), "
        f"{refused} commits refused"
    )


# --- 5. Postgres outage --------------------------------------------------------------------------------


async def postgres_outage(ctx: Context) -> Outcome:
    """Connections terminated every 3 s, then Postgres down (crashed) for 20 s; the hub resumes by itself."""
    events, rate, churn_s, down_s = ctx.pick((2400, 70, 9, 6), (20000, 200, 30, 20))
    pg = harness.own_postgres(ctx.folder / "postgres")
    ctx.services.extra.append(pg)
    await apply_migrations(pg.dsn)
    database = urlsplit(pg.dsn).path.lstrip("/")
    state = {"pg": pg}

    async def plan(fleet: HubFleet, publisher: Publisher) -> None:
        hub = fleet.members[0]
        await wait_progress(ctx, pg.dsn, "after start")
        killed = 0
        for _ in range(int(churn_s // 3)):
            await asyncio.sleep(3)
            n = await harness.terminate_backends(pg.admin_dsn, database)
            killed += n
            ctx.fault(f"pg_terminate_backend on {n} connections of the hub")
        await wait_progress(ctx, pg.dsn, "after the connection kills")
        await harness.crash_postgres(state["pg"])
        ctx.fault(f"Postgres crashed (immediate shutdown) for {down_s}s")
        await asyncio.sleep(down_s)
        state["pg"] = harness.start_postgres_again(state["pg"])
        ctx.services.extra.append(state["pg"])
        ctx.fault("Postgres back")
        if not hub.alive:
            ctx.failures.append(f"the hub exited during the outage (exit {hub.proc.returncode})")
        ctx.notes.append(f"{killed} connections killed; {down_s}s down")

    outcome = await course(
        ctx,
        harness.scenario_settings(ctx.services.broker.bootstrap, pg.dsn),
        pg.dsn,
        generate(ctx.seed, WorkloadSpec(events)),
        rate,
        plan,
    )
    if len(outcome.extra.get("exit_codes", [])) != 1:
        outcome.failures.append("the hub had to be restarted")
    state["pg"].stop()
    return outcome


# --- 6. network faults -------------------------------------------------------------------------------


async def network_faults(ctx: Context) -> Outcome:
    """Delay, resets and a black-hole between the hub and the broker, and between the hub and Postgres."""
    events, rate = ctx.pick((2800, 70), (20000, 150))
    delay_s, resets_s, hole_s = ctx.pick((4, 6, 6), (20, 20, 30))
    broker_proxy_port = free_port()
    broker = harness.start_advertising_broker(broker_proxy_port, ctx.folder / "tansu.log")
    ctx.services.extra.append(broker)
    kafka_proxy = await FaultProxy("127.0.0.1", broker.listen_port, port=broker_proxy_port, seed=ctx.seed).start()
    dsn = await ctx.services.database(ctx.name)
    target = urlsplit(dsn)
    pg_proxy = await FaultProxy(target.hostname, target.port, seed=ctx.seed + 1).start()
    hub_dsn = target._replace(netloc=f"{target.username}@127.0.0.1:{pg_proxy.port}").geturl()
    # Everyone (hub, publisher, probe, checker) reaches the broker through the proxy: Tansu advertises it.
    settings = harness.scenario_settings(f"127.0.0.1:{broker_proxy_port}", hub_dsn)

    async def plan(fleet: HubFleet, publisher: Publisher) -> None:
        await wait_progress(ctx, dsn, "after start")
        kafka_proxy.delay_s, pg_proxy.delay_s = 0.03, 0.005
        ctx.fault(f"delay 30 ms/chunk to the broker, 5 ms/chunk to Postgres for {delay_s}s")
        await asyncio.sleep(delay_s)
        for proxy in (kafka_proxy, pg_proxy):
            proxy.restore()
            proxy.reset_share = 0.3
        ctx.fault(f"30% of new connections reset, 30% of open ones every 2 s, for {resets_s}s")
        for _ in range(int(resets_s // 2)):
            await asyncio.sleep(2)
            for proxy in (kafka_proxy, pg_proxy):
                proxy.reset_some(0.3)
        for proxy in (kafka_proxy, pg_proxy):
            proxy.restore()
        await wait_progress(ctx, dsn, "after the resets")
        for name, proxy in (("broker", kafka_proxy), ("Postgres", pg_proxy)):
            proxy.blackhole()
            ctx.fault(f"{name} black-holed for {hole_s}s")
            await asyncio.sleep(hole_s)
            proxy.restore()
            ctx.fault(f"{name} reachable again")
            if proxy is kafka_proxy:  # the last fault's recovery is measured by the caller
                await wait_progress(ctx, dsn, f"after the {name} black-hole")
        ctx.notes.append(f"resets: broker {kafka_proxy.resets}, Postgres {pg_proxy.resets}")

    try:
        outcome = await course(ctx, settings, dsn, generate(ctx.seed, WorkloadSpec(events)), rate, plan)
    finally:
        await kafka_proxy.stop()
        await pg_proxy.stop()
        broker.stop()
    return outcome


# --- 7. duplicates and replay ----------------------------------------------------------------------------

CHECKSUMMED_TABLES = (
    "customers",
    "shipments",
    "shipment_events",
    "call_logs",
    "coordination_tasks",
    "customer_notifications",
    "inbox",
    "outbox",
    "dead_letters",
)
# Table names come from the fixed tuple above, never from input.
TABLE_CHECKSUM = {
    t: f"SELECT count(*) AS n, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS sum FROM {t} x"
    for t in CHECKSUMMED_TABLES
}


async def table_checksums(dsn: str) -> dict[str, tuple[int, str]]:
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        return {t: tuple(await conn.fetchrow(sql)) for t, sql in TABLE_CHECKSUM.items()}
    finally:
        await conn.close()


async def duplicates_replay(ctx: Context) -> Outcome:
    """Every event published twice (20% of second copies in other bytes with the same content: key
    order, spacing, explicit nulls), 10% three times (on another partition); then a full replay from
    the earliest offset by a new consumer group: no row changes, no new alerts."""
    events = ctx.pick(1500, 30000)
    dsn = await ctx.services.database(ctx.name)
    settings = harness.scenario_settings(ctx.services.broker.bootstrap, dsn)
    ledger = generate(ctx.seed, WorkloadSpec(events, copies=2, third_copy_share=0.1, reserialized_share=0.2))
    run = await begin(ctx, settings, dsn, ledger, rate=None)
    try:
        findings = await recover_and_check(run, faults_ended=False)
        if ctx.stalls or findings.backlog():
            # A first pass still at work would change rows under the replay: no verdict on the replay.
            ctx.notes.append("replay skipped: the first pass had not finished")
        else:
            await _replay(ctx, run, settings, dsn, ledger)
    except BaseException:
        await run.fleet.stop_all(timeout=5)
        await run.probe.stop()
        raise
    return await finish(run, findings)


async def _replay(ctx: Context, run: Run, settings, dsn: str, ledger: Ledger) -> None:
    """A hub with a new consumer group reads everything again: no row may change, no alert be added."""
    before = await table_checksums(dsn)
    alerts_before = len(await read_topics(settings, list(settings.alert_topics)))
    await run.fleet.stop_all()
    ctx.fault(f"{len(ledger.publications) - len(ledger.events)} re-published copies; first pass done")
    replay = settings.model_copy(update={"consumer_group": f"{settings.consumer_group}-replay"})
    replay_probe = await LagProbe(replay, replay.consumer_group).start()
    started = time.monotonic()
    run.fleet.spawn(replay)
    ctx.fault("replay: a hub with a new consumer group reads everything from the earliest offset")
    took, behind = await replay_probe.wait_caught_up(SETTLE_S)
    await replay_probe.stop()
    if took is None:
        ctx.stall(f"replay did not finish within {SETTLE_S:.0f}s: {behind}")
    await harness.wait_outbox_sent(dsn, 30)
    await asyncio.sleep(2)  # a late outbox row or alert would show up by now
    after = await table_checksums(dsn)
    alerts_after = len(await read_topics(settings, list(settings.alert_topics)))
    changed = [t for t in CHECKSUMMED_TABLES if before[t] != after[t]]
    if changed:
        ctx.failures.append(
            "the replay changed rows in " + ", ".join(f"{t} ({before[t][0]} -> {after[t][0]} rows)" for t in changed)
        )
    if alerts_after != alerts_before:
        ctx.failures.append(f"the replay added {alerts_after - alerts_before} alerts to the handler queues")
    ctx.notes.append(
        f"replay of {len(ledger.publications)} records in {time.monotonic() - started:.1f}s: "
        f"{len(changed)} tables changed, outbox {before['outbox'][0]} -> {after['outbox'][0]}"
    )


# --- 8. out of order --------------------------------------------------------------------------------------


async def out_of_order(ctx: Context) -> Outcome:
    """Each shipment's events shuffled within a window of 5; stale carrier updates for 25% of them."""
    events = ctx.pick(2000, 20000)
    spec = WorkloadSpec(events, shuffle_window=5, stale_share=0.25)
    outcome = await standard(ctx, spec, rate=ctx.pick(400, 800))
    stale = sum(1 for e in generate(ctx.seed, spec).events.values() if "stale" in e.tags)
    outcome.notes.append(f"{stale} stale carrier updates; final status and ETA by occurred_at")
    return outcome


# --- 9. poison mix ------------------------------------------------------------------------------------------


async def poison_mix(ctx: Context) -> Outcome:
    """1% hostile messages from the catalogue interleaved with good ones (some with SQL-looking text)."""
    events = ctx.pick(2000, 30000)
    spec = WorkloadSpec(events, hostile_share=0.01, sql_share=0.3)
    outcome = await standard(ctx, spec, rate=ctx.pick(400, 800))
    kinds = sorted({p.item.name for p in generate(ctx.seed, spec).hostile})
    outcome.notes.append(f"{len(kinds)} hostile kinds; SQL-looking text stored verbatim")
    return outcome


# --- 10. oversized -------------------------------------------------------------------------------------------


async def oversized(ctx: Context) -> Outcome:
    """A 900 KB valid event is processed; a 1.5 MB one is dead-lettered as `oversized` without a stall."""
    events = ctx.pick(1000, 5000)
    spec = WorkloadSpec(events, big_valid_bytes=900_000, oversized_bytes=(1_500_000,))
    dsn = await ctx.services.database(ctx.name)
    outcome = await standard(ctx, spec, rate=ctx.pick(200, 400), dsn=dsn)
    rows = await _dead_letter_messages(dsn, "oversized")
    if not rows or not all(re.search(r"[\d,]+ bytes.*limit", m) for m in rows):
        outcome.failures.append(f"the oversized dead letter does not say its size and the limit: {rows}")
    outcome.notes.append(f"oversized message: {rows[0][:90] if rows else '(none)'}")
    return outcome


SELECT_DEAD_LETTER_MESSAGES = "SELECT message FROM dead_letters WHERE reason = $1"


async def _dead_letter_messages(dsn: str, reason: str) -> list[str]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return [r["message"] for r in await conn.fetch(SELECT_DEAD_LETTER_MESSAGES, reason)]
    finally:
        await conn.close()


# --- 11. security posture --------------------------------------------------------------------------------------

APP_ROLE_MUST_FAIL = {
    "CREATE TABLE": "CREATE TABLE public.intruder (x int)",
    "DROP TABLE": "DROP TABLE inbox",
    "TRUNCATE": "TRUNCATE inbox",
    "DELETE": "DELETE FROM customers",  # the purge's tables (inbox, outbox, ...) excepted: tests/test_data_lifecycle.py
    "read another schema": "SELECT * FROM other.secrets",
    "ALTER TABLE": "ALTER TABLE inbox ADD COLUMN intruder int",
}
APP_ROLE_MAY = {"SELECT inbox": "SELECT count(*) FROM inbox"}
CREATE_OTHER_SCHEMA = (
    "CREATE SCHEMA other AUTHORIZATION hub_owner",
    "CREATE TABLE other.secrets (note text)",
    "ALTER TABLE other.secrets OWNER TO hub_owner",
    "INSERT INTO other.secrets VALUES ('not for the hub')",
)
CANARIES = (CANARY_PHONE, CANARY_PHONE_DIGITS, CANARY_NAME, KAFKA_PASSWORD_CANARY, DB_PASSWORD_CANARY)
SELECT_DEAD_LETTER_TEXT = "SELECT reason, error_class, message FROM dead_letters"


async def security_posture(ctx: Context) -> Outcome:
    """Least-privilege Postgres role, and canary PII and secrets that must never leak."""
    admin = ctx.services.postgres.admin_dsn
    database = f"rel_security_{uuid.uuid4().hex[:6]}"
    await harness.admin_execute(admin, harness.CREATE_DATABASE.format(name=database))
    await _run_roles_script(ctx, harness.with_database(admin, database))
    db_admin = harness.with_database(admin, database)
    for sql in CREATE_OTHER_SCHEMA:
        await harness.admin_execute(db_admin, sql)
    host = urlsplit(admin).netloc.split("@")[-1]
    owner_dsn = f"postgresql://hub_owner:owner-pw@{host}/{database}"
    app_dsn = f"postgresql://hub_app:{DB_PASSWORD_CANARY}@{host}/{database}"
    await _hub_migrate(ctx, owner_dsn, app_dsn)
    await _privilege_checks(ctx, app_dsn)

    port = free_port()
    settings = harness.scenario_settings(
        ctx.services.broker.bootstrap,
        app_dsn,
        log_level="DEBUG",
        http_port=port,
        kafka_sasl_password=SecretStr(KAFKA_PASSWORD_CANARY),
    )
    _sasl_reaches_aiokafka(ctx, settings)
    # A few hostile messages beside the canary ones; the poison scenario covers the whole catalogue.
    spec = WorkloadSpec(
        ctx.pick(1000, 5000),
        canaries=True,
        hostile_share=0.002,
        hostile_names=("bad_json", "naive_timestamp", "unknown_enum", "nul_in_text"),
    )
    metrics: list[str] = []

    async def plan(fleet: HubFleet, publisher: Publisher) -> None:
        await wait_progress(ctx, db_admin, "as hub_app")
        await _publishing_done_of(publisher)
        await harness.wait_for(lambda: _caught_up(db_admin, len(generate(ctx.seed, spec).events)), 60)
        metrics.append(await _scrape_metrics(port))

    outcome = await course(ctx, settings, db_admin, generate(ctx.seed, spec), rate=ctx.pick(300, 600), plan=plan)
    bad_dsn_output = await _bad_dsn_run(ctx, settings)
    texts = {
        "hub logs": _read_logs(ctx.folder),
        "/metrics": "\n".join(metrics),
        "bad-DSN run": bad_dsn_output,
        "dead_letters text": await _dead_letter_text(db_admin),
        **await _topic_texts(settings),
    }
    _canary_hunt(ctx, outcome, texts)
    if not metrics or "hub_events" not in metrics[0]:
        outcome.failures.append("no /metrics answer from `hub run` (HUB_HTTP_PORT)")
    outcome.notes.append("Kafka TLS/SASL on the wire: tests/test_security_settings.py")
    return outcome


async def _publishing_done_of(publisher: Publisher) -> None:
    while not publisher.finished_at:
        await asyncio.sleep(0.2)


async def _caught_up(dsn: str, events: int) -> bool:
    return await harness.inbox_count(dsn) >= events


async def _run(cmd: list[str], env: dict | None = None, timeout: float = 120) -> tuple[int, str]:
    """A short-lived helper process (psql, `hub migrate`): exit code and output."""
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=harness.REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -9, f"killed after {timeout:.0f}s"
    return proc.returncode, out.decode(errors="replace")


async def _run_roles_script(ctx: Context, db_admin: str) -> None:
    from hub.dev.embedded import _pg_bin  # the bundled psql: the roles script uses psql variables and \gexec

    rc, out = await _run(
        [
            _pg_bin("psql"),
            db_admin,
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "owner_password=owner-pw",
            "-v",
            f"app_password={DB_PASSWORD_CANARY}",
            "-f",
            str(ROLES_SCRIPT),
        ]
    )
    if rc != 0:
        raise RuntimeError(f"{ROLES_SCRIPT.name} failed: {out.strip()}")
    ctx.fault(f"roles from {ROLES_SCRIPT.relative_to(harness.REPO_ROOT)}: hub_owner, hub_app")


async def _hub_migrate(ctx: Context, owner_dsn: str, app_dsn: str) -> None:
    settings = harness.scenario_settings("127.0.0.1:9", app_dsn)
    env = {**settings.child_environment(), "HUB_MIGRATE_DATABASE_URL": owner_dsn}
    rc, out = await _run([sys.executable, "-m", "hub", "migrate"], env=env)
    (ctx.folder / "hub-migrate.log").write_text(out)
    if rc != 0:
        raise RuntimeError(f"`hub migrate` as hub_owner failed: {out}")
    ctx.fault("`hub migrate` as hub_owner (HUB_MIGRATE_DATABASE_URL)")


def _sasl_reaches_aiokafka(ctx: Context, settings) -> None:
    """The SASL settings (password included) are what aiokafka is given; TLS on the wire is tested in
    tests/test_security_settings.py."""
    secured = settings.model_copy(
        update={
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": "hub",
        }
    )
    kwargs = aiokafka_kwargs(secured)
    wanted = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "hub",
        "sasl_plain_password": KAFKA_PASSWORD_CANARY,
    }
    wrong = {k: kwargs.get(k) for k, v in wanted.items() if kwargs.get(k) != v}
    if wrong:
        ctx.failures.append(f"SASL settings do not reach aiokafka: {sorted(wrong)}")
    if KAFKA_PASSWORD_CANARY in repr(secured) or KAFKA_PASSWORD_CANARY in str(secured.model_dump()):
        ctx.failures.append("the Kafka password shows in the settings' repr or dump")


async def _privilege_checks(ctx: Context, app_dsn: str) -> None:
    conn = await asyncpg.connect(app_dsn, timeout=10)
    refused, allowed = [], []
    try:
        for label, sql in APP_ROLE_MUST_FAIL.items():
            try:
                await conn.execute(sql)
                allowed.append(label)
            except asyncpg.InsufficientPrivilegeError:
                refused.append(label)
            except asyncpg.PostgresError as exc:
                allowed.append(f"{label} (refused with {exc.sqlstate}, not 42501)")
        for sql in APP_ROLE_MAY.values():
            await conn.execute(sql)
        superuser = await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    finally:
        await conn.close()
    if allowed:
        ctx.failures.append(f"hub_app may: {', '.join(allowed)}")
    if superuser:
        ctx.failures.append("hub_app is a superuser")
    ctx.notes.append(f"hub_app refused {len(refused)}/{len(APP_ROLE_MUST_FAIL)} ({', '.join(refused)})")


async def _scrape_metrics(port: int) -> str:
    with contextlib.suppress(OSError, asyncio.TimeoutError):
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        await writer.drain()
        body = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        return body.decode(errors="replace")
    return ""


async def _bad_dsn_run(ctx: Context, settings) -> str:
    """`hub run` against a Postgres that is not there, with the canary password in its DSN."""
    closed = free_port()
    bad = settings.model_copy(
        update={
            "database_url": SecretStr(f"postgresql://hub_app:{DB_PASSWORD_CANARY}@127.0.0.1:{closed}/hub"),
            "http_port": 0,
        }
    )
    hub = HubProcess("hub-bad-dsn", bad, ctx.folder / "hub-bad-dsn.log").start()
    rc = await hub.wait_exit(45)
    if rc is None:
        await hub.kill()
        ctx.notes.append("`hub run` with an unreachable Postgres kept retrying (killed after 45 s)")
    elif rc == 0:
        ctx.failures.append("`hub run` with an unreachable Postgres exited 0")
    ctx.fault(f"`hub run` with an unreachable Postgres: exit {rc}")
    return hub.log_text()


def _read_logs(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.glob("hub-*.log")))


async def _dead_letter_text(dsn: str) -> str:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return "\n".join(
            f"{r['reason']} {r['error_class']} {r['message']}" for r in await conn.fetch(SELECT_DEAD_LETTER_TEXT)
        )
    finally:
        await conn.close()


async def _topic_texts(settings) -> dict[str, str]:
    dlq = await read_topics(settings, [settings.topic_dead_letter])
    alerts = await read_topics(settings, list(settings.alert_topics))
    headers = "\n".join(
        f"{k}={v.decode(errors='replace')}" for r in dlq for k, v in (r.headers or ()) if k.startswith("hub.errors.")
    )
    return {"dead-letter headers": headers, "alerts": "\n".join(r.value.decode(errors="replace") for r in alerts)}


def _canary_hunt(ctx: Context, outcome: Outcome, texts: dict[str, str]) -> None:
    leaks = [f"{canary!r} in {where}" for where, text in texts.items() for canary in CANARIES if canary in text]
    if leaks:
        outcome.failures.append("canaries leaked: " + "; ".join(leaks))
    sizes = ", ".join(f"{where} {len(text):,} chars" for where, text in texts.items())
    outcome.notes.append(f"{len(CANARIES)} canaries, {len(leaks)} leaks")
    outcome.extra["canary_search"] = sizes


# --- registry ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    run: Callable[[Context], Awaitable[Outcome]]


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("crash_loop", "Crash loop (SIGKILL)", crash_loop),
    Scenario("graceful_stop", "Graceful stop (SIGTERM)", graceful_stop),
    Scenario("scale_churn", "Scale-out and churn", scale_churn),
    Scenario("zombie", "Zombie (SIGSTOP)", zombie),
    Scenario("postgres_outage", "Postgres outage", postgres_outage),
    Scenario("network_faults", "Network faults", network_faults),
    Scenario("duplicates_replay", "Duplicates and replay", duplicates_replay),
    Scenario("out_of_order", "Out of order", out_of_order),
    Scenario("poison_mix", "Poison mix", poison_mix),
    Scenario("oversized", "Oversized", oversized),
    Scenario("security_posture", "Security posture", security_posture),
)

# The clock's and dispatch's scenarios build on the course above (and import it from here), so they
# are looked up when run: either module may be imported first.
from tests.reliability import clock_scenarios, dispatch_scenarios  # noqa: E402


def _later(module, name: str) -> Callable[[Context], Awaitable[Outcome]]:
    async def run(ctx: Context) -> Outcome:
        return await getattr(module, name)(ctx)

    run.__name__ = name
    return run


SCENARIOS += (
    Scenario("clock_kill_mid_tick", "Clock: SIGKILL mid-tick", _later(clock_scenarios, "clock_kill_mid_tick")),
    Scenario("clock_two_evaluators", "Clock: two evaluators", _later(clock_scenarios, "clock_two_evaluators")),
    Scenario("clock_postgres_outage", "Clock: Postgres outage", _later(clock_scenarios, "clock_postgres_outage")),
    Scenario("clock_jump", "Clock: 10-hour jump", _later(clock_scenarios, "clock_jump")),
    Scenario("dispatch_smtp_down", "Dispatch: SMTP down", _later(dispatch_scenarios, "dispatch_smtp_down")),
    Scenario(
        "dispatch_kill_mid_send", "Dispatch: SIGKILL mid-send", _later(dispatch_scenarios, "dispatch_kill_mid_send")
    ),
    Scenario(
        "dispatch_endpoint_down", "Dispatch: one endpoint down", _later(dispatch_scenarios, "dispatch_endpoint_down")
    ),
)
BY_NAME = {s.name: s for s in SCENARIOS}
