"""The Celery app: three tasks (pre-scan, host group, post-scan) carrying the versioned
protocol messages of worker/protocol.py as msgpack. Pickle is refused everywhere: tasks and
results are msgpack only, control messages and events JSON.

Each worker process (Celery's prefork child) hosts one engine and one event loop, and shares
the scan's registry and locks through Redis (worker/cluster/registry.py and sync.py). A task
whose message does not parse is rejected for good, not retried: a peer's bad message.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace

from celery import Celery, signals
from celery.exceptions import Reject
from kombu import Queue

from worker.errors import UserError
from worker.protocol import GroupJob, PhaseJob, PhaseResult, ProtocolError, from_wire, to_wire

DEFAULT_QUEUE = "nsecluster"
RAW_QUEUE = "raw"  # raw-packet work: consumed only by --privileged workers
TASK_GROUP = "nsecluster.group"
TASK_PHASE = "nsecluster.phase"
MAX_RETRIES_ON_WORKER_LOSS = 2  # a group that kills its worker this often is a poison group

log = logging.getLogger("nsecluster.cluster")


def make_app(broker_url: str, visibility_timeout_s: int = 3600) -> Celery:
    """``visibility_timeout_s``: a task taken by a worker that vanished (killed with its
    processes, machine lost) returns to the queue this long after it was taken. It must
    exceed the longest host group's run time, or a slow group also runs a second time."""
    app = Celery("nsecluster", broker=broker_url, backend=broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="msgpack", result_serializer="msgpack",
        accept_content=["msgpack", "json"], result_accept_content=["msgpack"],
        event_serializer="json",
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_track_started=True, worker_send_task_events=True, task_send_sent_event=True,
        task_default_queue=DEFAULT_QUEUE,
        task_queues=[Queue(DEFAULT_QUEUE), Queue(RAW_QUEUE)],
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": visibility_timeout_s,
                                  "unacked_restore_interval": 10,
                                  "unacked_restore_throttle": 1},
        result_expires=86400, worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    # A task whose process dies (SIGKILL, out of memory, a crashing script) runs again, on
    # any worker, at most MAX_RETRIES_ON_WORKER_LOSS more times; then it fails with the reason.
    lost = {"bind": True, "retry_on_worker_lost": True,
            "max_retries": MAX_RETRIES_ON_WORKER_LOSS, "default_retry_delay": 0}
    app.task(name=TASK_GROUP, **lost)(_group_task)
    app.task(name=TASK_PHASE, **lost)(_phase_task)
    return app


def _job(wire, kind):
    """The job in ``wire``, its data directory replaced by this worker's own: a worker reads
    scripts and data only from where it was configured to (nsecluster worker --datadir)."""
    from worker.nse.stage import worker_datadir

    try:
        job = from_wire(wire)
    except ProtocolError as exc:
        raise Reject(f"bad job message: {exc}", requeue=False) from None
    if not isinstance(job, kind):
        raise Reject(f"bad job message: expected a {kind.__name__}", requeue=False)
    return replace(job, options=replace(job.options, datadir=worker_datadir()))


def _group_task(task, wire):
    from worker.group import run_group

    job = _job(wire, GroupJob)
    state = process_state(task.app)
    state.use_scan(job.scan_id)
    progress = _Progress(task, state.loop, job)
    try:
        result = run_group(job, loop=state.loop, log=_engine_log, on_progress=progress.port_scan)
    except BaseException:
        state.abandon(job.scan_id)
        raise
    finally:
        progress.stop()
    return to_wire(result)


class _Progress:
    """What Flower shows while a group runs: a custom PROGRESS state (in the result backend,
    and as a task-progress event) with the port scan's share done, the hosts whose scripts
    are done, the script threads running and the scripts they run, every second."""

    EVERY_MS = 1000

    def __init__(self, task, loop, job: GroupJob):
        self.task, self.loop, self.job = task, loop, job
        self.port_scan_done = 0.0
        self.timer = loop.call_later(self.EVERY_MS, self.report)

    def port_scan(self, done: int, total: int) -> None:
        self.port_scan_done = done / total if total else 1.0

    def report(self) -> None:
        from worker.nse.stage import script_activity

        threads, scripts, busy_hosts = script_activity(self.job.scan_id)
        if threads:
            self.port_scan_done = 1.0  # scripts run after the port scan
        hosts = len(self.job.targets)
        meta = {"scan": self.job.scan_id, "group": self.job.group_index, "hosts": hosts,
                "phase": "scripts" if threads else "scan",
                "port_scan_done": round(self.port_scan_done, 3),
                "hosts_done": hosts - busy_hosts if threads else 0,
                "threads": threads, "scripts": scripts[:20]}
        # Flower lists only Celery's own task fields: the summary rides in "result" until
        # the real result replaces it.
        summary = (f"{meta['phase']}: {meta['hosts_done']}/{hosts} hosts done, "
                   f"port scan {meta['port_scan_done']:.0%}, {threads} script threads"
                   + (f" ({', '.join(scripts[:5])})" if scripts else ""))
        try:
            self.task.update_state(state="PROGRESS", meta=meta)
            self.task.send_event("task-progress", result=summary, **meta)
        except Exception as exc:  # progress is best effort: the group goes on
            log.warning("could not report progress: %s", exc)
        self.timer = self.loop.call_later(self.EVERY_MS, self.report)

    def stop(self) -> None:
        self.timer.cancel()


def _phase_task(task, wire):
    from worker.nse.stage import run_postrule, run_prerule

    job = _job(wire, PhaseJob)
    state = process_state(task.app)
    state.use_scan(job.scan_id)
    try:
        raw = []
        if job.phase == "prerule":
            scripts, added, raw = run_prerule(job.scan_id, job.options, state.loop, _engine_log)
        else:
            scripts, added = run_postrule(job.scan_id, job.options, state.loop, _engine_log), []
    except UserError as exc:  # e.g. a script name that matches nothing here: the user's
        return to_wire(PhaseResult(job.scan_id, job.phase, [], [], error=str(exc)))
    except BaseException:
        state.abandon(job.scan_id)
        raise
    return to_wire(PhaseResult(job.scan_id, job.phase, scripts, added, raw_scripts=raw))


def _engine_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class ProcessState:
    """What one worker process keeps between tasks: its loop, its Redis connection and the
    shared-state backends its engine was made with, pointed at the current task's scan."""

    def __init__(self, broker_url: str):
        import redis

        from worker.cluster.registry import RedisRegistry
        from worker.cluster.sync import RedisSync
        from worker.nse import stage
        from worker.nsock.loop import process_loop

        self.loop = process_loop()
        self.client = redis.Redis.from_url(broker_url, socket_timeout=30,
                                           socket_connect_timeout=10, health_check_interval=30)
        self.pid = os.getpid()
        self.scan_id = None
        self.registry = RedisRegistry(self.client, scan_id="")
        self.sync = None

        def make_sync(ops):
            self.sync = RedisSync(ops, self.loop, self.client, self.scan_id or "")
            return self.sync

        stage.use_shared_state(self.registry, make_sync)

    def use_scan(self, scan_id: str) -> None:
        self.scan_id = scan_id
        self.registry.use_scan(scan_id)
        if self.sync is not None:
            self.sync.use_scan(scan_id)

    def abandon(self, scan_id: str) -> None:
        """A task failed part-way (time limit, our bug): its threads will never end, so give
        up their locks now and drop the scan's stage; a later task starts it afresh."""
        from worker.nse.stage import finish

        if self.sync is not None:
            self.sync.release_all()
        finish(scan_id)


_state: ProcessState | None = None


def process_state(app: Celery) -> ProcessState:
    global _state
    if _state is None or _state.pid != os.getpid():  # made after the fork, in the child
        _state = ProcessState(app.conf.broker_url)
    return _state


@signals.worker_process_shutdown.connect
def _close_state(**_):
    if _state is not None and _state.sync is not None:
        _state.sync.close()
