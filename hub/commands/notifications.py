"""`hub notifications ...`: the customer notifications the dispatcher sends, every try it made, and
what the ops team can do about one: retry a failed notice, resend a sent one. See hub/ops/notifications.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from hub.commands._common import console
from hub.commands._views import duration, lines, print_json, short_when, when, with_database
from hub.ops import notifications as ops
from hub.ops.notifications import Notification, NotificationFilter, NotificationView
from schemas.enums import NotificationChannel, NotificationKind, NotificationStatus

NAME = "notifications"
app = typer.Typer(
    help="Customer notifications: list and inspect them with every try, retry a failed one, resend a sent one.",
    no_args_is_help=True,
)

NOTIFICATION_ID = typer.Argument(..., help="The notification id (from `hub notifications list`)")
STATUS_STYLE = {"pending": "cyan", "sent": "green", "failed": "bold red", "suppressed": "dim"}
OUTCOME_STYLE = {"sent": "green", "retry": "dark_orange", "failed": "bold red"}


def _span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{max(seconds, 0)}s" if seconds < 60 else duration(span)


def status_note(n: Notification, now: datetime) -> str:
    """What a notice's status means right now, in a few words."""
    if n.status == NotificationStatus.PENDING:
        if n.waits_for_call:
            return f"waits for call-back task {n.call_task_id} ({n.call_task_status or 'not found'})"
        if n.next_attempt_at is None:
            return "not scheduled"
        if n.next_attempt_at > now:
            return f"next try in {_span(n.next_attempt_at - now)}"
        late = now - n.next_attempt_at
        return "due now" if late < timedelta(minutes=1) else f"due for {_span(late)}"
    if n.status == NotificationStatus.FAILED:
        return n.last_error or "no error recorded"
    if n.status == NotificationStatus.SENT:
        return f"at {short_when(n.sent_at)}"
    return "a later milestone notice superseded it"


def _status_cell(n: Notification, now: datetime) -> Text:
    extra = [status_note(n, now)]
    if n.status == NotificationStatus.PENDING and n.last_error:
        extra.append(f"last error: {n.last_error}")
    return lines(Text(n.status, style=STATUS_STYLE.get(n.status, "")), *extra)


def _attempts_cell(n: Notification) -> Text:
    return lines(str(n.attempts), *([f"{n.tries} in all"] if n.tries != n.attempts else []))


def notification_table(notes: list[Notification], now: datetime) -> Table:
    table = Table(
        caption="times in UTC; attempts: tries in the current schedule (a retry starts a new one)",
        caption_justify="left",
    )
    table.add_column("created", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("customer", no_wrap=True)
    table.add_column("channel", no_wrap=True)
    table.add_column("status", overflow="fold", min_width=20)
    table.add_column("attempts", no_wrap=True, justify="right")
    for n in notes:
        table.add_row(
            short_when(n.created_at),
            lines(n.kind, n.notification_id),
            lines(n.customer_id, *([f"shipment {n.shipment_id}"] if n.shipment_id else [])),
            n.channel,
            _status_cell(n, now),
            _attempts_cell(n),
        )
    return table


def _details(view: NotificationView, now: datetime) -> Table:
    n = view.notification
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    status = Text(n.status, style=STATUS_STYLE.get(n.status, "")).append(f"  {status_note(n, now)}", style="")
    rows: list[tuple[str, str | Text]] = [
        ("notification", n.notification_id),
        ("kind", n.kind),
        ("status", status),
        ("channel", n.channel),
        ("language", n.language),
        ("customer", n.customer_id),
        ("shipment", n.shipment_id or "-"),
        ("created", when(n.created_at)),
        ("source event", n.source_event_id),
        ("resent from", n.resent_from or "-"),
        ("next attempt", when(n.next_attempt_at)),
        ("attempts", f"{n.attempts} in the current schedule, {n.tries} in all"),
        ("last error", n.last_error or "-"),
        ("sent", when(n.sent_at)),
        ("failed", when(n.failed_at)),
        ("suppressed", when(n.suppressed_at)),
    ]
    if n.channel == NotificationChannel.PHONE:
        rows.append(("call-back task", _call_task(view)))
    if n.channel == NotificationChannel.WEBHOOK:
        disabled = view.webhook_disabled_at
        rows.append(("webhook", f"disabled since {when(disabled)} (410 Gone)" if disabled else "enabled"))
    rows.append(("resent as", ", ".join(view.resends) or "-"))
    rows.append(("body", n.body))
    for label, value in rows:
        grid.add_row(label, value if isinstance(value, Text) else Text(value))  # Text: data is not markup
    return grid


def _call_task(view: NotificationView) -> str:
    task = view.call_task
    if task is None:
        return view.notification.call_task_id or "none yet (the dispatcher opens one when the notice is due)"
    text = f"{task.task_id} ({task.status}"
    if task.claimed_by and not task.resolved_by:
        text += f", held by {task.claimed_by}"
    if task.resolved_by:
        text += f", by {task.resolved_by} at {when(task.resolved_at)}"
    if task.resolution:
        text += f": {task.resolution}"
    return text + ")"


def attempts_table(view: NotificationView) -> Table:
    table = Table(title="attempts", caption="times in UTC", caption_justify="left")
    table.add_column("attempt", justify="right", no_wrap=True)
    table.add_column("at", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    table.add_column("status code", justify="right", no_wrap=True)
    table.add_column("error", overflow="fold", min_width=20)
    table.add_column("duration", justify="right", no_wrap=True)
    for a in view.attempts:
        table.add_row(
            str(a.attempt),
            a.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            Text(a.outcome, style=OUTCOME_STYLE.get(a.outcome, "")),
            "-" if a.status_code is None else str(a.status_code),
            Text(a.error or "-"),
            f"{a.duration_ms} ms",
        )
    return table


def _title(n: Notification) -> str:
    return f"notification {n.notification_id} ({escape(n.kind)} to {escape(n.customer_id)} by {n.channel})"


@app.command(name="list")
def list_command(
    status: NotificationStatus | None = typer.Option(None, "--status", help="Only this status [default: all]"),
    channel: NotificationChannel | None = typer.Option(None, "--channel", "-c", help="Only this channel"),
    customer: str | None = typer.Option(None, "--customer", help="Only this customer's notices"),
    shipment: str | None = typer.Option(None, "--shipment", help="Only notices about this shipment"),
    kind: NotificationKind | None = typer.Option(None, "--kind", help="Only this kind"),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="At most this many notices"),
    as_json: bool = typer.Option(False, "--json", help="A JSON array instead of a table"),
) -> None:
    """Notifications, newest first, with what their status means now.

    Status says when a pending notice's next try is, which call-back task a phone notice waits for,
    and why a failed one failed; attempts counts the tries of the current schedule.
    """
    wanted = NotificationFilter(
        status=status and status.value,
        channel=channel and channel.value,
        customer_id=customer,
        shipment_id=shipment,
        kind=kind and kind.value,
        limit=limit,
    )
    page = with_database(lambda conn: ops.list_notifications(conn, wanted))
    if as_json:
        print_json(page.notifications)
        return
    if not page.notifications:
        console.print("no notifications match")
        return
    console.print(notification_table(page.notifications, datetime.now(UTC)))
    if page.more:
        console.print(f"[yellow]more match:[/] showing the newest {limit}; raise --limit or filter further")


@app.command(name="show")
def show_command(
    notification_id: str = NOTIFICATION_ID,
    as_json: bool = typer.Option(False, "--json", help="A JSON object instead of tables (the notice and its tries)"),
) -> None:
    """One notification: every column, every try, and a phone notice's call-back task.

    The body is shown (it is what the customer gets); webhook secrets never are.
    """
    view = with_database(lambda conn: ops.notification_view(conn, notification_id))
    if as_json:
        print_json(view)
        return
    console.print(_details(view, datetime.now(UTC)))
    if view.attempts:
        console.print(attempts_table(view))
    else:
        console.print(Text("no tries yet", style="dim"))


@app.command(name="retry")
def retry_command(notification_id: str = NOTIFICATION_ID) -> None:
    """Try a failed notification again (pending, due now).

    Its retry schedule starts again (attempts 0); its earlier tries stay in its history and its last
    error is kept for reference. Only failed notices: a sent one is resent instead. Refused when the
    dispatcher could only fail it again (a disabled webhook) or suppress it (a later milestone).
    """
    retried = with_database(lambda conn: ops.retry(conn, notification_id, datetime.now(UTC)))
    n = retried.notification
    console.print(f"{_title(n)} is [cyan]pending[/] again, due now: a running dispatcher picks it up within seconds")
    if n.last_error:
        console.print(Text(f"its last error, for reference: {n.last_error}", style="dim"))
    for task_id in retried.open_failure_tasks:
        console.print(
            f"[yellow]note:[/] the call centre's task {task_id} (reach the customer another way) is still open; "
            f"if this try gets through, close it: hub tasks cancel {task_id} --by NAME --resolution 'notice retried'"
        )


@app.command(name="resend")
def resend_command(notification_id: str = NOTIFICATION_ID) -> None:
    """Send a sent notification again, as a new notification.

    Receivers drop an id they have seen, so the copy gets a new id (derived from the old one and the
    resend's number; source event resend:OLD_ID:N) with the same kind, channel, language, body,
    customer and shipment. Only sent notices (a failed one: retry), and failed phone notices, whose
    cancelled call-back task cannot be opened again: the copy gets a new one.
    """
    resent = with_database(lambda conn: ops.resend(conn, notification_id, datetime.now(UTC)))
    console.print(
        f"{_title(resent.original)} resent as notification {resent.resend.notification_id} "
        f"(resend {resent.number}): [cyan]pending[/], due now; follow it with "
        f"`hub notifications show {resent.resend.notification_id}`"
    )
