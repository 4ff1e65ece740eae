"""The clock's scenarios: `hub run` evaluating timers (HUB_SCHEDULER_INTERVAL_S) while it is killed,
doubled, cut off from Postgres, or jumped ahead with `hub tick --now`.

Their workloads are dated against the wall clock (the other scenarios' events are a week old and
their hubs run no clock): a *backlog* ledger a week old, whose every timer is due the moment its
event is stored (stale shipments once per arrival, their tasks, both breach levels), beside *live*
ledgers squeezed in time (generator.WorkloadSpec.time_scale) so that a chosen kind of moment, e.g.
the P2 tasks' due_at (8 h after their event), falls inside a chosen stretch of the run. The oracle
(clockcheck.py) expects the timers from the events, not from the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson

from hub.dev.embedded import free_port
from hub.migrate import apply_migrations
from tests.reliability import harness
from tests.reliability.checker import Findings, read_topics
from tests.reliability.clockcheck import judge_clock, read_clock_state, wait_fired
from tests.reliability.generator import Ledger, WorkloadSpec, generate, interleave, retime
from tests.reliability.harness import HubFleet, HubProcess
from tests.reliability.oracle import SLA_BREACH, STALE_SHIPMENT
from tests.reliability.publisher import Publisher
from tests.reliability.scenarios import Context, Oracle, Outcome, Run, course, wait_progress

INTERVAL_S = 0.5  # HUB_SCHEDULER_INTERVAL_S in these scenarios
CLOCK_SETTLE_S = 60.0  # after the lag reached zero: every timer due by then has fired this soon
H = timedelta(hours=1)
DAY = timedelta(days=1)
# The clock's work in pg_stat_activity: a tick under way, in a chunk's transaction (its writes not
# yet committed) or in the query for what is due.
DUE_QUERY = "%''sla_warning'' AS kind%"
MID_TICK = f"""
SELECT pid, state, wait_event_type, wait_event, extract(epoch FROM now() - xact_start) AS xact_s,
       CASE WHEN query LIKE '{DUE_QUERY}' THEN 'due query' ELSE 'chunk transaction' END AS phase,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query
FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'
  AND (query LIKE '%clock_firings%' OR query LIKE '{DUE_QUERY}'
       OR query LIKE '%SET stale_at = u.stale_at%' OR query LIKE '%escalation_level = u.level%'
       OR (query LIKE '%FOR UPDATE%' AND query LIKE '%escalate_at%'))
ORDER BY phase
"""
ACTIVITY = """
SELECT pid, backend_start, state, wait_event_type, wait_event, extract(epoch FROM now() - xact_start) AS xact_s,
       pg_blocking_pids(pid) AS blocked_by, left(regexp_replace(query, '\\s+', ' ', 'g'), 120) AS query
FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
"""
LEADER = re.compile(r"^hub_clock_leader (\d+(?:\.\d+)?)$", re.M)


# --- workloads dated against the wall clock ------------------------------------------------------------


def backlog(seed: int, events: int, now: datetime) -> Ledger:
    """A week-old ledger (its whole life squeezed into a few hours): every timer is due on arrival."""
    return generate(seed, WorkloadSpec(events, incident_share=0.3, t0=now - 7 * DAY, time_scale=0.05))


def live(natural: Ledger, first: datetime, span: timedelta) -> Ledger:
    """A generated ledger with its events dated evenly over [first, first + span], in their own order.
    Generate first, then take the wall clock and date: generating takes seconds on a loaded host."""
    return retime(natural, first, span)


def calls_heavy(events: int) -> WorkloadSpec:
    """Many tasks per event: complaints and claims (P2), urgent orders (P1), shipment incidents."""
    return WorkloadSpec(events, call_share=0.6, incident_share=0.4, urgent_share=0.1)


def clock_settings(ctx: Context, dsn: str, **overrides):
    # No satisfaction surveys: the oracle judges the SLA and stale timers, and a sampled delivery's
    # survey timer (issue 20) would be a firing it cannot predict.
    overrides = {"survey_sample_rate": 0.0, **overrides}
    return harness.scenario_settings(ctx.services.broker.bootstrap, dsn, scheduler_interval_s=INTERVAL_S, **overrides)


def clock_oracle(ctx: Context, end_at: Callable[[], datetime | None] | None = None, wall_clock: bool = True) -> Oracle:
    """Wait for the clock (everything due by the end fired), then judge it (clockcheck.py). The end is
    the moment the group had committed everything (every event stored), unless `end_at` names one."""
    seen: dict = {}

    async def settle(run: Run) -> None:
        end = (end_at() if end_at else None) or datetime.now(UTC)
        seen["end"] = end
        left = await wait_fired(run.ledger, run.dsn, list(run.settings.alert_topics), end, CLOCK_SETTLE_S, wall_clock)
        if left:
            ctx.stall(f"clock: {left} timers due by the end still unfired {CLOCK_SETTLE_S:.0f}s later")

    async def judge(run: Run, findings: Findings) -> None:
        # A hub may still tick while this reads: the topics before and after one database snapshot.
        # An alert on a queue after it but in neither the snapshot's outbox nor the earlier read was
        # committed after the snapshot: left out, instead of counted as an alert the outbox lacks.
        topics = list(run.settings.alert_topics)
        before = {orjson.loads(r.value).get("alert_id") for r in await read_topics(run.settings, topics)}
        state = await read_clock_state(run.dsn, topics)
        known = before | {message_id for message_id, _doc, _sent in state.outbox}
        topic = [
            d
            for d in (orjson.loads(r.value) for r in await read_topics(run.settings, topics))
            if d["alert_id"] in known
        ]
        report = judge_clock(findings, run.ledger, state, seen["end"], [d for d in topic if _timer(d)], wall_clock)
        ctx.notes.append(report.summary())
        ctx.extra["clock"] = {
            "end": seen["end"].isoformat(),
            "fired": dict(report.fired),
            "required": report.required,
            "ticks": report.ticks,
            "largest_tick": report.largest_tick,
            "multi_chunk_ticks": report.multi_chunk_ticks,
        }
        seen["state"] = state

    oracle = Oracle(settle, judge)
    oracle.seen = seen  # type: ignore[attr-defined] - the scenario reads the state the oracle read
    return oracle


def _timer(doc: dict) -> bool:
    return "timer" in (doc.get("source") or {})


async def _connect(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, timeout=10)


# --- 12. kill mid-tick --------------------------------------------------------------------------------


async def clock_kill_mid_tick(ctx: Context) -> Outcome:
    """SIGKILL the evaluating hub again and again, preferably while the clock's transaction is open,
    while thousands of timers are due (a week-old backlog) or come due (P2 tasks due seconds after
    their events arrive)."""
    old, new, rate, kills = ctx.pick((1000, 1000, 20, 5), (8000, 8000, 50, 15))
    old_events, natural = backlog(ctx.seed, old, datetime.now(UTC)), generate(ctx.seed + 1, calls_heavy(new))
    dsn = await ctx.services.database(ctx.name)
    now = datetime.now(UTC)
    publish_s = (old + new) / rate
    # The live tasks' due_at (8 h after their event) comes a few seconds after the event is published.
    ledger = interleave(old_events, live(natural, now - 8 * H + timedelta(seconds=10), timedelta(seconds=publish_s)))
    total = len(ledger.events)
    rng = ctx.rng()
    landed: Counter = Counter()

    async def plan(fleet: HubFleet, publisher: Publisher) -> None:
        hub = fleet.members[0]
        await wait_progress(ctx, dsn, "after start")
        conn = await _connect(dsn)
        try:
            for n in range(kills):
                if n and await wait_progress(ctx, dsn, f"after restart {n}", total) >= total:
                    break  # everything is stored: no new timers, no more ticks with work to kill
                await asyncio.sleep(rng.uniform(1.0, 2.5))
                mid = await _wait_mid_tick(conn, prefer_s=6.0, timeout=10.0)
                landed[mid["phase"] if mid else "between ticks"] += 1
                fired = await conn.fetchval("SELECT count(*) FROM clock_firings")
                activity = [dict(r) for r in await conn.fetch(ACTIVITY)]
                await hub.kill()
                ctx.fault(
                    f"SIGKILL {hub.name} "
                    + (f"in the clock's {mid['phase']} ({mid['query'][:40].strip()}...)" if mid else "between ticks")
                    + f", {fired} firings so far"
                )
                _append(ctx.folder / "kills.jsonl", {"hub": hub.name, "mid": mid, "activity": activity})
                hub = fleet.spawn()
        finally:
            await conn.close()
        ctx.notes.append(
            f"{sum(landed.values())} SIGKILLs: {landed['chunk transaction']} in a chunk's transaction, "
            f"{landed['due query']} in a due query, {landed['between ticks']} between ticks"
        )
        ctx.extra["kills"] = dict(landed)

    return await course(ctx, clock_settings(ctx, dsn), dsn, ledger, rate, plan, oracle=clock_oracle(ctx))


def _append(path, doc: dict) -> None:
    with open(path, "ab") as out:
        out.write(orjson.dumps(doc, default=str) + b"\n")


async def _wait_mid_tick(conn: asyncpg.Connection, prefer_s: float, timeout: float) -> dict | None:
    """The clock's backend at work: in a chunk's transaction if one comes within `prefer_s`, else in
    any part of a tick within `timeout` (None: none seen)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        found = await conn.fetchrow(MID_TICK)
        if found is not None and (found["phase"] == "chunk transaction" or time.monotonic() - started > prefer_s):
            return dict(found)
        await asyncio.sleep(0.003)
    return None


# --- 13. two evaluators ---------------------------------------------------------------------------------


async def clock_two_evaluators(ctx: Context) -> Outcome:
    """Two hubs with the clock on, sharing the consumer group and the database: one evaluates, the other
    stands by; the leader is stopped (SIGTERM) and later killed (SIGKILL) and replaced. /metrics
    (hub_clock_leader) of every hub is sampled every 0.5 s."""
    old, new, rate, handovers = ctx.pick((800, 800, 40, 2), (6000, 6000, 80, 6))
    old_events, natural = backlog(ctx.seed, old, datetime.now(UTC)), generate(ctx.seed + 1, calls_heavy(new))
    dsn = await ctx.services.database(ctx.name)
    settings = clock_settings(ctx, dsn)
    now = datetime.now(UTC)
    publish_s = (old + new) / rate
    ledger = interleave(old_events, live(natural, now - 8 * H + timedelta(seconds=10), timedelta(seconds=publish_s)))
    samples: list[tuple[float, dict[str, int]]] = []
    stop_sampling = asyncio.Event()

    async def sample(fleet: HubFleet) -> None:
        while not stop_sampling.is_set():
            leaders = {}
            for hub in fleet.running:
                value = await _leader(hub)
                if value is not None:
                    leaders[hub.name] = value
            samples.append((time.monotonic(), leaders))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_sampling.wait(), 0.5)

    async def plan(fleet: HubFleet, publisher: Publisher):
        sampler = asyncio.create_task(sample(fleet))
        await wait_progress(ctx, dsn, "after start")
        for n in range(handovers):
            await asyncio.sleep(publish_s / (handovers + 1))
            leader = await _current_leader(fleet, 15.0)
            if leader is None:
                ctx.stall("no hub reported hub_clock_leader 1 within 15 s")
                continue
            how = "SIGTERM" if n % 2 == 0 else "SIGKILL"
            if how == "SIGTERM":
                rc, took = await leader.terminate(20)
                if rc is None:
                    await leader.kill()
            else:
                await leader.kill()
            at = time.monotonic()
            ctx.fault(f"{how} the leader {leader.name}; a new hub joins")
            fleet.spawn(settings.model_copy(update={"http_port": free_port()}))
            successor = await _current_leader(fleet, 20.0)
            took = time.monotonic() - at
            ctx.notes.append(
                f"handover {n + 1} ({how}): {successor.name if successor else 'nobody'} led {took:.1f}s later"
            )

        async def aftermath() -> None:
            await asyncio.sleep(3)
            stop_sampling.set()
            await sampler

        return aftermath()

    outcome = await course(
        ctx,
        settings,
        dsn,
        ledger,
        rate,
        plan,
        hubs=0,
        oracle=clock_oracle(ctx),
        spawn=[settings.model_copy(update={"http_port": free_port()}) for _ in range(2)],
    )
    _judge_leadership(ctx, outcome, samples)
    return outcome


async def _leader(hub: HubProcess) -> int | None:
    port = hub.settings.http_port
    with contextlib.suppress(OSError, TimeoutError, ValueError):
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        await writer.drain()
        body = (await asyncio.wait_for(reader.read(), 2)).decode(errors="replace")
        writer.close()
        found = LEADER.search(body)
        return int(float(found.group(1))) if found else None
    return None


async def _current_leader(fleet: HubFleet, timeout: float) -> HubProcess | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for hub in fleet.running:
            if await _leader(hub) == 1:
                return hub
        await asyncio.sleep(0.3)
    return None


def _judge_leadership(ctx: Context, outcome: Outcome, samples: list[tuple[float, dict[str, int]]]) -> None:
    """Two hubs may never both say they lead for longer than the gauge can lag (it is refreshed every
    5 s); nobody leading for long while hubs run is a stall."""
    both, none = (
        _longest(samples, lambda s: sum(s.values()) >= 2),
        _longest(samples, lambda s: bool(s) and not any(s.values())),
    )
    counts = Counter(name for _, s in samples for name, v in s.items() if v)
    outcome.notes.append(
        f"{len(samples)} /metrics samples: leaders {dict(counts)}; longest with two leaders {both:.1f}s, "
        f"with none {none:.1f}s"
    )
    if both > 6.0:
        outcome.failures.append(f"two hubs reported hub_clock_leader 1 together for {both:.1f}s")
    if none > 20.0:
        outcome.stalls.append(f"no hub led the clock for {none:.1f}s while hubs ran")


def _longest(samples: list[tuple[float, dict[str, int]]], bad) -> float:
    longest, since = 0.0, None
    for at, s in samples:
        if bad(s):
            since = at if since is None else since
            longest = max(longest, at - since)
        else:
            since = None
    return longest


# --- 14. Postgres outage ----------------------------------------------------------------------------------


async def clock_postgres_outage(ctx: Context) -> Outcome:
    """Postgres down (crashed) for 60 s while hundreds of timers come due: P2 tasks' level 1 and P1
    tasks' level 2, dated to fall inside the outage. After it, one catch-up tick fires them all,
    chunk after chunk in due order; nothing due before or during the outage is missing or doubled."""
    old, p2, p1, warmup_s, down_s = ctx.pick((400, 2600, 2000, 60, 60), (4000, 8000, 6000, 180, 60))
    pg = harness.own_postgres(ctx.folder / "postgres")
    ctx.services.extra.append(pg)
    await apply_migrations(pg.dsn)
    old_events = backlog(ctx.seed, old, datetime.now(UTC))
    natural_p2 = generate(ctx.seed + 1, calls_heavy(p2))
    natural_p1 = generate(ctx.seed + 2, WorkloadSpec(p1, call_share=0.3, incident_share=0.6, urgent_share=0.3))
    now = datetime.now(UTC)
    outage_at = now + timedelta(seconds=warmup_s)
    inside = timedelta(seconds=down_s - 10)
    first = outage_at + timedelta(seconds=5)
    ledger = interleave(
        live(natural_p2, first - 8 * H, inside),  # P2 tasks: level 1 8 h on, inside the outage
        live(natural_p1, first - 4 * H, inside),  # P1 tasks: level 2 4 h on, inside the outage
        old_events,
    )
    state = {"pg": pg}

    async def plan(fleet: HubFleet, publisher: Publisher) -> None:
        hub = fleet.members[0]
        await wait_progress(ctx, pg.dsn, "after start")
        stored = await harness.wait_for(lambda: _stored(pg.dsn, len(ledger.events)), max(1.0, _until(outage_at)))
        if not stored:
            ctx.notes.append("not every event was stored before the outage")
        await asyncio.sleep(max(0.0, _until(outage_at)))
        await harness.crash_postgres(state["pg"])
        ctx.fault(f"Postgres crashed (immediate shutdown) for {down_s}s; timers come due meanwhile")
        await asyncio.sleep(down_s)
        state["pg"] = harness.start_postgres_again(state["pg"])
        ctx.services.extra.append(state["pg"])
        ctx.fault("Postgres back")
        if not hub.alive:
            ctx.failures.append(f"the hub exited during the outage (exit {hub.proc.returncode})")

    oracle = clock_oracle(ctx)
    outcome = await course(ctx, clock_settings(ctx, pg.dsn), pg.dsn, ledger, rate=None, plan=plan, oracle=oracle)
    seen = oracle.seen  # type: ignore[attr-defined]
    if "state" in seen:
        _catch_up_note(outcome, seen["state"], outage_at, outage_at + timedelta(seconds=down_s))
    state["pg"].stop()
    return outcome


def _until(moment: datetime) -> float:
    return (moment - datetime.now(UTC)).total_seconds()


async def _stored(dsn: str, events: int) -> bool:
    return await harness.inbox_count(dsn) >= events


def _catch_up_note(outcome: Outcome, state, down_at: datetime, back_at: datetime) -> None:
    """What the first tick after the outage fired: everything due meanwhile, and how many chunks."""
    during = [f for f in state.firings.values() if down_at <= f.due_at < back_at]
    after = sorted({f.fired_at for f in state.firings.values() if f.fired_at >= back_at})
    if not after:
        outcome.notes.append(f"{len(during)} timers came due during the outage; no tick after it fired anything")
        return
    first = after[0]
    tick = [f for f in state.firings.values() if f.fired_at == first]
    chunks = len({f.recorded_at for f in tick})
    late = sum(1 for f in during if f.fired_at == first)
    outcome.notes.append(
        f"{len(during)} timers came due during the outage; the first tick after it "
        f"({(first - back_at).total_seconds():.1f}s after Postgres was back) fired {len(tick)} in {chunks} "
        f"transaction(s), {late} of them due during the outage"
    )
    outcome.extra["catch_up"] = {"due_during": len(during), "tick_firings": len(tick), "chunks": chunks}
    if any(f.fired_at < back_at and f.due_at >= down_at for f in during):
        outcome.failures.append("a timer due during the outage fired before Postgres was back")


# --- 15. clock jump -------------------------------------------------------------------------------------


async def clock_jump(ctx: Context) -> Outcome:
    """Ten hours at once, twice: events dated 10 h ago arrive in one burst (the P1 tasks among them are
    past due by more than a window: level 1 and 2 in one tick, no warning), then, with fresh tasks
    dated now, `hub tick --now` 10 h ahead while the hub runs. Each timer once."""
    burst, fresh = ctx.pick((1000, 1000), (10000, 10000))
    natural_burst, natural_fresh = generate(ctx.seed, calls_heavy(burst)), generate(ctx.seed + 1, calls_heavy(fresh))
    dsn = await ctx.services.database(ctx.name)
    now = datetime.now(UTC)
    jump_to = now + 10 * H
    ledger = interleave(
        live(natural_burst, now - 10 * H - timedelta(minutes=5), timedelta(minutes=5)),
        live(natural_fresh, now - timedelta(minutes=5), timedelta(minutes=5)),
    )
    settings = clock_settings(ctx, dsn)
    jump: dict = {}

    async def plan(fleet: HubFleet, publisher: Publisher) -> None:
        await wait_progress(ctx, dsn, "after start")
        while not publisher.finished_at:
            await asyncio.sleep(0.2)
        store_s = max(90.0, len(ledger.events) / 50)
        if not await harness.wait_for(lambda: _stored(dsn, len(ledger.events)), store_s):
            ctx.stall(f"the events were not all stored within {store_s:.0f}s")
        await asyncio.sleep(2 * INTERVAL_S)  # the hub's own ticks have fired what is due in real time
        started = time.monotonic()
        rc, out = await _hub_tick(settings, jump_to, ctx.folder / "hub-tick.log")
        took = time.monotonic() - started
        ctx.fault(
            f"`hub tick --now {jump_to.isoformat(timespec='seconds')}` (+10 h) while the hub runs: "
            f"exit {rc} after {took:.1f}s"
        )
        if rc == 0:
            jump["report"] = orjson.loads(out)
            return
        ctx.failures.append(
            f"`hub tick --now` (+10 h) while a hub runs its clock failed after {took:.0f}s: {out.strip()[-300:]}"
        )
        # The jump itself, with the hub stopped (its relay publishes the tick's alerts once it is back).
        await fleet.stop_all()
        rc, out = await _hub_tick(settings, jump_to, ctx.folder / "hub-tick-hub-stopped.log")
        ctx.fault(f"`hub tick --now` (+10 h) with the hub stopped: exit {rc}; the hub restarted")
        if rc == 0:
            jump["report"] = orjson.loads(out)
        else:
            ctx.failures.append(f"`hub tick --now` (+10 h) failed with the hub stopped too: {out.strip()[-300:]}")
        fleet.spawn()

    # Every timer due by the jump's moment must have fired; if the jump could not run, by the real end.
    oracle = clock_oracle(ctx, end_at=lambda: jump_to if "report" in jump else None, wall_clock=False)
    outcome = await course(ctx, settings, dsn, ledger, rate=None, plan=plan, oracle=oracle)
    seen = oracle.seen  # type: ignore[attr-defined]
    if "state" in seen:
        _judge_jump(outcome, seen["state"], jump_to, jump.get("report"))
    return outcome


async def _hub_tick(settings, now: datetime, log) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub",
        "tick",
        "--now",
        now.isoformat(),
        "--json",
        cwd=harness.REPO_ROOT,
        env=settings.child_environment(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -9, "killed after 120 s"
    log.write_bytes(out + b"\n--- stderr ---\n" + err)
    return proc.returncode, (out if proc.returncode == 0 else err + out).decode(errors="replace")


def _judge_jump(outcome: Outcome, state, jump_to: datetime, report: dict | None) -> None:
    """A task whose both levels were due when its first breach fired gets both in that tick."""
    breaches: dict[str, dict[str, datetime]] = {}
    for f in state.firings.values():
        if f.timer == SLA_BREACH:
            breaches.setdefault(f.subject, {})[f.key] = f.fired_at
    split = 0
    both = 0
    for task_id, levels in breaches.items():
        task = state.tasks.get(task_id)
        if task is None or "1" not in levels:
            continue
        if levels["1"] >= task["escalate_at"]:
            both += 1
            if levels.get("2") != levels["1"]:
                split += 1
    at_jump = [f for f in state.firings.values() if f.fired_at == jump_to]
    kinds = Counter((f.timer, f.key if f.timer != STALE_SHIPMENT else "") for f in at_jump)
    fired = ", ".join(f"{n} {t} {k}".strip() for (t, k), n in sorted(kinds.items()))
    outcome.notes.append(
        f"{both} tasks past level 2 at their first breach, {split} of them not both at once; "
        f"the jump tick fired {len(at_jump)} ({fired})"
    )
    if split:
        outcome.failures.append(f"{split} tasks got level 1 and level 2 in different ticks although both were due")
    if report is not None and len(report["fired"]) != len(at_jump):
        outcome.failures.append(
            f"`hub tick --json` reported {len(report['fired'])} firings, clock_firings has {len(at_jump)} at its now"
        )


__all__ = ["clock_jump", "clock_kill_mid_tick", "clock_postgres_outage", "clock_two_evaluators"]
