"""`hub run` with HUB_WORKERS > 1: a supervisor and that many worker processes.

One hub process routes as fast as one core decodes and decides (the event loop is busy most of a
batch), so more throughput takes more processes. The workers are plain `hub run` processes in one
consumer group: Kafka splits the partitions among them, Postgres advisory locks keep each shipment's
sheet consistent across them, and one relay at a time publishes the outbox (its leader lock). Any
number of hosts could run them; this only saves starting and stopping them by hand.

The supervisor forwards SIGTERM and SIGINT, and waits for every worker to finish its batch. When a
worker dies on its own, the supervisor stops the others and exits with the worker's code, so the
service manager (systemd, Kubernetes) sees one failed service and restarts it: a restart loses and
doubles nothing (the inbox turns re-read records into duplicates).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from hub.config import Settings
from hub.processes import orphan_guard

log = logging.getLogger("hub.workers")
POLL_S = 0.2
KILL_AFTER_S = 10.0  # beyond each worker's own graceful timeout


def worker_environment(settings: Settings, index: int, base: dict[str, str]) -> dict[str, str]:
    """Worker `index` (0-based) gets the supervisor's settings, its own client id and its own port."""
    env = settings.child_environment(base)
    env["HUB_WORKERS"] = "1"
    env["HUB_CLIENT_ID"] = f"{settings.client_id}-{index}"
    env["HUB_HTTP_PORT"] = str(settings.http_port + index if settings.http_port else 0)
    return env


@dataclass
class Supervisor:
    settings: Settings
    base_env: dict[str, str]
    workers: list[subprocess.Popen] = field(default_factory=list)
    _stop_requested: bool = False  # by SIGTERM or SIGINT

    def run(self) -> int:
        """Start the workers, wait for a stop signal or a worker's death; returns the exit code."""
        previous = {sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            try:
                self._start()
            except BaseException:
                self._stop(None)  # those already started must not outlive a failed start
                raise
            failed = self._watch()
            return self._stop(failed)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _request_stop(self, _signum: int, _frame) -> None:
        self._stop_requested = True

    def _start(self) -> None:
        count = self.settings.workers
        if count > self.settings.topic_partitions:
            log.warning(
                "%d workers but HUB_TOPIC_PARTITIONS is %d: if the topics have that many partitions, "
                "range assignment leaves the extra workers without any (idle, never ready)",
                count,
                self.settings.topic_partitions,
            )
        for index in range(count):
            if self._stop_requested:
                break
            # Their own session: Ctrl-C reaches the supervisor only, which stops the workers in order.
            self.workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "hub", "run"],
                    env=worker_environment(self.settings, index, self.base_env),
                    start_new_session=True,
                    preexec_fn=orphan_guard(),  # only a prctl call, safe between fork and exec
                )
            )
        ports = (
            f"; health and metrics on ports {self.settings.http_port}-{self.settings.http_port + count - 1}"
            if self.settings.http_port
            else ""
        )
        log.info("started %d workers (pids %s)%s", count, ", ".join(str(w.pid) for w in self.workers), ports)

    def _watch(self) -> subprocess.Popen | None:
        """Until a stop is requested (None) or a worker exits on its own (that worker)."""
        while not self._stop_requested:
            for worker in self.workers:
                if worker.poll() is not None:
                    return worker
            time.sleep(POLL_S)
        return None

    def _stop(self, failed: subprocess.Popen | None) -> int:
        if failed is not None:
            log.error("worker pid %d exited with code %s; stopping the other workers", failed.pid, failed.returncode)
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.graceful_timeout_s + KILL_AFTER_S
        for worker in self.workers:
            try:
                worker.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop in time; killing it", worker.pid)
                worker.kill()
                worker.wait()
        if failed is not None:
            return failed.returncode if failed.returncode and failed.returncode > 0 else 1
        # A worker still importing when SIGTERM came has no handler yet and dies of the signal itself:
        # before its first batch, so that is a clean stop too.
        return 0 if all(w.returncode in (0, -signal.SIGTERM) for w in self.workers) else 1
