"""The scan on a cluster: the same phases as the embedded default, sent as Celery tasks.

The coordinator drives the canvas itself — pre-scan task, then host-group tasks, then the
post-scan task — rather than building one Celery chord: targets are split lazily (a /8 is
never held in memory), a finished group is written as soon as it arrives, and targets that
scripts add (nmap.add_targets) join the scan while it runs. At most ``window`` groups are
out at a time, enough to keep every worker process busy.
"""
from __future__ import annotations

import contextlib
import math
import sys
import time

from coordinator.scanrecord import ScanRecord
from worker.errors import UserError
from worker.protocol import (
    GroupJob,
    GroupResult,
    PhaseJob,
    PhaseResult,
    ProtocolError,
    ScanOptions,
    ScriptResult,
    from_wire,
    needs_raw_sockets,
    to_wire,
)

_POLL_S = 0.02


class ScanCancelled(KeyboardInterrupt):
    """`nsecluster cancel` from another shell: the scan stops as on Ctrl-C."""


class BrokerLost(UserError):
    """Redis went away or restarted (losing its queues): the scan stops; every host already
    written is complete, and no partial host is written."""


class ClusterRunner:
    def __init__(self, scan_id: str, options: ScanOptions, broker_url: str, log=None,
                 command_line: str = ""):
        from worker.cluster.app import make_app

        self.scan_id, self.options, self.broker_url = scan_id, options, broker_url
        self.command_line = command_line
        self.client = None
        self.record: ScanRecord | None = None
        self._next_cancel_check = 0.0
        self._poll_s = _POLL_S
        self.group_queue = None  # None: the default queue
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.app = make_app(broker_url)
        self.window = 2
        self.workers: list[dict] = []  # connected workers: node, queues, concurrency
        self.failures = 0
        self._outstanding: dict[str, object] = {}  # task id -> AsyncResult
        self._prerule: PhaseResult | None = None

    # -- the runner interface (coordinator/scan.py) -------------------------------------------
    def prepare(self) -> None:
        """The broker answers and at least one worker listens, or one clear line."""
        import redis

        try:
            self.client = redis.Redis.from_url(self.broker_url, socket_connect_timeout=5,
                                               socket_timeout=30)
            self.client.ping()
            self.broker_run = self.client.info("server")["run_id"]
        except (redis.RedisError, ValueError) as exc:
            raise UserError(f"cannot reach the broker at {self.broker_url}: {exc}") from None
        from worker.cluster.presence import live_workers

        self.workers = live_workers(self.client)
        if not self.workers:
            raise UserError(f"no nsecluster worker is connected to {self.broker_url} (start one "
                            f"with: nsecluster worker --broker {self.broker_url})")
        processes = sum(max(1, int(w.get("concurrency") or 1)) for w in self.workers)
        self.window = max(2, 2 * processes)
        self.record = ScanRecord(self.client, self.scan_id)
        self.record.start(self.command_line)
        self.log(f"nsecluster: scan {self.scan_id} on {len(self.workers)} worker"
                 f"{'s' if len(self.workers) != 1 else ''} ({processes} processes); "
                 f"'nsecluster status {self.scan_id}' shows it")
        if needs_raw_sockets(self.options):  # -sS, -sU
            flags = ["-sS"] * (self.options.scan_type == "syn") + ["-sU"] * self.options.udp_scan
            self._route_to_privileged_workers([], why=" ".join(flags))
        elif self.options.interface or self.options.spoof_mac:  # they are about raw packets
            self._route_to_privileged_workers([], why="-e" if self.options.interface
                                              else "--spoof-mac")
        if self.options.scripts is not None:
            # The pre-scan phase runs now: a worker that cannot select or load the scripts
            # stops the scan before any output is opened, as in the embedded default.
            try:
                self._prerule = self._phase("prerule", fatal=True)
            except BaseException:
                self.cancel()
                raise
            if self._prerule is not None and self._prerule.raw_scripts:
                self._route_to_privileged_workers(self._prerule.raw_scripts)

    def _route_to_privileged_workers(self, scripts: list[str], why: str = "") -> None:
        """Host groups go to the raw queue, which only --privileged workers consume; with
        none connected the scan stops now instead of waiting forever."""
        from worker.cluster.app import RAW_QUEUE

        if not any(RAW_QUEUE in worker["queues"] for worker in self.workers):
            self.record.finish("failed")
            self._forget_scan()
            reason = why or f"script{'s' if len(scripts) > 1 else ''} {', '.join(scripts)}"
            raise UserError(f"this scan needs raw packets ({reason}) but no --privileged worker "
                            f"is connected to {self.broker_url} (start one with: nsecluster "
                            f"worker --privileged --broker {self.broker_url})")
        self.group_queue = RAW_QUEUE

    def prerule(self) -> tuple[list[ScriptResult], list[str]]:
        result = self._prerule
        return (result.scripts, result.new_targets) if result else ([], [])

    def postrule(self) -> list[ScriptResult]:
        try:
            if self.options.scripts is None:
                return []
            result = self._phase("postrule")
            return result.scripts if result else []
        finally:
            with self._broker_errors():
                self._forget_scan()
                self.record.finish("failed" if self.failures else "done")

    def run_groups(self, groups, on_start, on_progress=None):
        """Send ``groups`` ((index, targets) pairs, read lazily) and yield each GroupResult as
        it finishes, in the order they finish."""
        with self._broker_errors():
            yield from self._run_groups(groups, on_start)

    def _run_groups(self, groups, on_start):
        from worker.cluster.app import TASK_GROUP

        pending: dict[str, tuple[int, tuple, object]] = {}
        groups = iter(groups)
        exhausted = False
        while True:
            while not exhausted and len(pending) < self.window:
                item = next(groups, None)
                if item is None:
                    exhausted = True
                    break
                index, targets = item
                on_start(targets)
                sent = self._send(TASK_GROUP, GroupJob(self.scan_id, index, tuple(targets),
                                                       self.options),
                                  shadow=f"nsecluster.group {self.scan_id[:12]} #{index}",
                                  queue=self.group_queue, **self._time_limits())
                pending[sent.id] = (index, targets, sent)
            if not pending:
                return
            finished = [key for key, (_, _, sent) in pending.items() if sent.ready()]
            if not finished:
                self._wait_a_little()
                continue
            self._poll_s = _POLL_S
            for key in finished:
                index, targets, sent = pending.pop(key)
                yield self._group_result(index, targets, sent)

    def cancel(self) -> None:
        """The scan stopped early (Ctrl-C, `nsecluster cancel`, an error): revoke what is
        still queued or running and close its record. Best effort: the broker may be gone."""
        import kombu.exceptions
        import redis

        try:
            if self._outstanding:
                self.app.control.revoke(list(self._outstanding), terminate=True,
                                        signal="SIGTERM")
                self._outstanding.clear()
            self._forget_scan()
            if self.record is not None:
                cancelled = self.record.cancel_requested()
                self.record.finish("cancelled" if cancelled else "interrupted")
        except (redis.RedisError, kombu.exceptions.OperationalError) as exc:
            self.log(f"nsecluster: could not withdraw the scan's tasks: {exc}")

    def _wait_a_little(self) -> None:
        """Sleep one poll (longer while nothing finishes, up to 0.2 s); about twice a second,
        see whether the scan was cancelled and whether Redis is still the one the scan
        started on."""
        time.sleep(self._poll_s)
        self._poll_s = min(self._poll_s * 1.5, 0.2)
        now = time.monotonic()
        if now < self._next_cancel_check:
            return
        self._next_cancel_check = now + 0.5
        with self._broker_errors():
            if self.client.info("server")["run_id"] != self.broker_run:
                raise BrokerLost(f"the broker at {self.broker_url} restarted during the scan "
                                 "and its queues were lost; the scan stopped (every host "
                                 "reported is complete)")
            if self.record.cancel_requested():
                self.log(f"nsecluster: scan {self.scan_id} cancelled")
                raise ScanCancelled()

    @contextlib.contextmanager
    def _broker_errors(self):
        import kombu.exceptions
        import redis

        try:
            yield
        except (redis.RedisError, kombu.exceptions.OperationalError) as exc:
            raise BrokerLost(f"lost the broker at {self.broker_url} ({exc}); the scan stopped "
                             "(every host reported is complete)") from None

    # -- tasks ------------------------------------------------------------------------------
    def _send(self, name: str, message, queue: str | None = None, **options):
        from worker.cluster.app import DEFAULT_QUEUE

        sent = self.app.send_task(name, args=[to_wire(message)], queue=queue or DEFAULT_QUEUE,
                                  **options)
        self._outstanding[sent.id] = sent
        self.record.sent(sent.id, group=isinstance(message, GroupJob))
        return sent

    def _time_limits(self) -> dict:
        """With --host-timeout, a group cannot legitimately run much longer than that: its
        hosts run side by side, then their scripts (which the host timeout also ends)."""
        host_timeout_ms = self.options.timing.host_timeout_ms
        if not host_timeout_ms:
            return {}
        soft = 2 * math.ceil(host_timeout_ms / 1000) + 60
        return {"soft_time_limit": soft, "time_limit": soft + 30}

    def _settle(self, sent):
        """The decoded message of a finished task, or None (reported) if it failed."""
        self._outstanding.pop(sent.id, None)
        try:
            if not sent.successful():
                return None
            return from_wire(sent.result)
        except ProtocolError as exc:
            self.log(f"nsecluster: a worker sent a bad result: {exc}")
            return None
        finally:
            sent.forget()

    def _group_result(self, index: int, targets, sent) -> GroupResult:
        reason = sent.result if sent.failed() else None
        result = self._settle(sent)
        if isinstance(result, GroupResult) and result.scan_id == self.scan_id:
            self.record.settled(sent.id, hosts=len(result.hosts))
            return result
        self.record.settled(sent.id, hosts=0, failed=True)
        self.failures += 1
        self.log(f"nsecluster: host group {index} ({_first(targets)}) failed: "
                 f"{_reason(reason)}")
        return GroupResult(self.scan_id, index, [])

    def _phase(self, phase: str, fatal: bool = False) -> PhaseResult | None:
        """Run one script phase; with ``fatal``, the user's error stops the scan."""
        with self._broker_errors():
            return self._run_phase(phase, fatal)

    def _run_phase(self, phase: str, fatal: bool) -> PhaseResult | None:
        from worker.cluster.app import TASK_PHASE

        sent = self._send(TASK_PHASE, PhaseJob(self.scan_id, phase, self.options),
                          shadow=f"nsecluster.{phase} {self.scan_id[:12]}")
        while not sent.ready():
            self._wait_a_little()
        reason = sent.result if sent.failed() else None
        result = self._settle(sent)
        self.record.settled(sent.id)
        if isinstance(result, PhaseResult) and result.phase == phase:
            if result.error is None:
                return result
            if fatal:
                self._forget_scan()
                self.record.finish("failed")
                raise UserError(result.error)
            reason = result.error
        self.failures += 1
        self.log(f"nsecluster: the {phase} script phase failed: {_reason(reason)}")
        return None

    def _forget_scan(self) -> None:
        """The scan's shared state (registry, locks, attempt counts) goes with the scan."""
        import redis

        from worker.cluster.keys import scan_prefix, unlink_matching

        try:
            unlink_matching(self.client, scan_prefix(self.scan_id) + "*")
        except redis.RedisError as exc:
            self.log(f"nsecluster: could not remove the scan's keys from Redis: {exc}")


def _first(targets) -> str:
    first = targets[0].address if targets else "-"
    return f"1 host: {first}" if len(targets) == 1 else f"{len(targets)} hosts: {first} ..."


def _reason(reason) -> str:
    if reason is None:
        return "the worker's result could not be read"
    return f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)
