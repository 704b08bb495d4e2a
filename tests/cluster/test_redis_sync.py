"""Mutexes and condition variables across processes through Redis: hand-over between
processes in FIFO order, a dead holder's lease lapsing, dead waiters passed over, condition
variables waking other processes, and real engine processes counting without a lost update."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid

import msgpack
import pytest
import redis
from nse_support import REPO

from worker.cluster.keys import scan_prefix, unlink_matching
from worker.cluster.sync import RedisSync
from worker.nse.ops import Operations
from worker.nsock.loop import EventLoop

REDIS_URL = "redis://127.0.0.1:6379/0"


def delete_scan_keys(scan_id: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    unlink_matching(client, scan_prefix(scan_id) + "*")
    client.close()


class Process:
    """One process's side: its loop, operations and backend; ``woken`` lists (thread, token)."""

    def __init__(self, scan: str, lease_ms: int = 10_000):
        self.woken: list[tuple[int, int]] = []
        self.ops = Operations(lambda thread, token, results: self.woken.append((thread, token)))
        self.loop = EventLoop()
        self.client = redis.Redis.from_url(REDIS_URL)
        self.sync = RedisSync(self.ops, self.loop, self.client, scan, lease_ms=lease_ms)

    def run_until(self, condition, limit_s: float = 5.0) -> None:
        deadline = time.monotonic() + limit_s
        while not condition() and time.monotonic() < deadline:
            self.loop.run_once(max_wait_ms=20)
        assert condition(), "not woken in time"

    def close(self):
        self.sync.close()
        self.loop.close()
        self.client.close()


@pytest.fixture
def scan(request):
    scan_id = f"test-{uuid.uuid4().hex}"
    made: list[Process] = []

    def process(**options) -> Process:
        made.append(Process(scan_id, **options))
        return made[-1]

    yield process
    for each in made:
        each.close()
    delete_scan_keys(scan_id)


def test_a_lock_passes_to_another_process_in_arrival_order(scan):
    a, b, c = scan(), scan(), scan()
    assert a.sync.lock("s:m", co=1, thread=1) is None
    b_token = b.sync.lock("s:m", co=1, thread=1)
    c_token = c.sync.lock("s:m", co=1, thread=1)
    assert b_token is not None and c_token is not None
    assert a.sync.trylock("s:m", co=2, thread=2) is False
    a.sync.done("s:m", co=1)
    b.run_until(lambda: b.woken == [(1, b_token)])
    assert b.sync.running("s:m") == 1 and a.sync.running("s:m") is None
    assert c.woken == []
    b.sync.done("s:m", co=1)
    c.run_until(lambda: c.woken == [(1, c_token)])


def test_a_dead_holders_lease_lapses_and_the_waiter_gets_the_lock(scan):
    holder, waiter = scan(lease_ms=300), scan(lease_ms=300)
    assert holder.sync.lock("s:m", co=1, thread=1) is None
    token = waiter.sync.lock("s:m", co=1, thread=1)
    holder.sync.close()  # the holder stops renewing (it is "killed"); its loop never runs
    started = time.monotonic()
    waiter.run_until(lambda: waiter.woken == [(1, token)], limit_s=3)
    assert time.monotonic() - started < 1.5  # about one lease and one renewal period
    assert waiter.sync.running("s:m") == 1


def test_a_waiter_of_a_dead_process_is_passed_over(scan):
    holder, dead, alive = scan(), scan(), scan()
    holder.sync.lock("s:m", co=1, thread=1)
    dead.sync.lock("s:m", co=1, thread=1)
    token = alive.sync.lock("s:m", co=1, thread=1)
    holder.client.delete(f"{dead.sync._alive_prefix}{dead.sync.process}")  # that process died
    holder.sync.done("s:m", co=1)
    alive.run_until(lambda: alive.woken == [(1, token)])
    dead.loop.run_once(max_wait_ms=50)
    assert dead.woken == []


def test_a_threads_end_takes_its_place_out_of_the_queue(scan):
    holder, quitter, next_one = scan(), scan(), scan()
    holder.sync.lock("s:m", co=1, thread=1)
    quitter.sync.lock("s:m", co=1, thread=7)
    token = next_one.sync.lock("s:m", co=1, thread=1)
    quitter.sync.release_thread(7)
    holder.sync.done("s:m", co=1)
    next_one.run_until(lambda: next_one.woken == [(1, token)])


def test_a_late_hand_over_message_never_grants_a_later_wait(scan):
    a, b = scan(), scan()
    a.sync.lock("s:m", co=1, thread=1)
    first_wait = a.sync.lock("s:m", co=2, thread=2)  # its hand-over is also published
    b_token = b.sync.lock("s:m", co=1, thread=1)
    a.sync.done("s:m", co=1)  # co 2 gets the lock at once, here
    assert a.woken == [(2, first_wait)]
    a.sync.done("s:m", co=2)  # on to b
    second_wait = a.sync.lock("s:m", co=2, thread=2)  # co 2 waits again, behind b
    b.run_until(lambda: b.woken == [(1, b_token)])
    for _ in range(10):
        a.loop.run_once(max_wait_ms=20)  # the first wait's late message arrives now
    assert a.woken == [(2, first_wait)] and a.sync.running("s:m") is None
    assert b.sync.running("s:m") == 1
    b.sync.done("s:m", co=1)
    a.run_until(lambda: a.woken[-1] == (2, second_wait))


def test_a_waiter_that_fell_out_of_the_queue_joins_again(scan):
    holder, waiter = scan(lease_ms=300), scan(lease_ms=300)
    holder.sync.lock("s:m", co=1, thread=1)
    token = waiter.sync.lock("s:m", co=1, thread=1)
    waiter.client.delete(f"{waiter.sync._alive_prefix}{waiter.sync.process}")  # a stall
    holder.sync.done("s:m", co=1)  # the waiter is passed over as dead: the lock is free
    waiter.run_until(lambda: waiter.woken == [(1, token)], limit_s=3)


def test_a_sleeper_whose_wake_up_was_lost_still_wakes(scan):
    sleeper, other = scan(lease_ms=300), scan(lease_ms=300)
    token = sleeper.sync.wait("s:cv", thread=1)
    sleeper.client.delete(f"{sleeper.sync._alive_prefix}{sleeper.sync.process}")
    other.sync.signal("s:cv")  # passed over as dead: no message comes
    sleeper.run_until(lambda: sleeper.woken == [(1, token)], limit_s=3)  # spuriously, soon


def test_a_thread_ending_during_its_hand_over_passes_the_lock_on_at_once(scan):
    holder, quitter, next_one = scan(), scan(), scan()
    holder.sync.lock("s:m", co=1, thread=1)
    quitter.sync.lock("s:m", co=1, thread=7)
    token = next_one.sync.lock("s:m", co=1, thread=1)
    holder.sync.done("s:m", co=1)  # handed to the quitter; its message is not read yet
    quitter.sync.release_thread(7)
    next_one.run_until(lambda: next_one.woken == [(1, token)], limit_s=2)  # not a lease later
    for _ in range(5):
        quitter.loop.run_once(max_wait_ms=20)  # the late message changes nothing
    assert next_one.sync.running("s:m") == 1


def test_condition_variables_wake_other_processes(scan):
    a, b, c = scan(), scan(), scan()
    b_token = b.sync.wait("s:cv", thread=1)
    c_token = c.sync.wait("s:cv", thread=1)
    a.sync.signal("s:cv")  # the most recent waiter: c
    c.run_until(lambda: c.woken == [(1, c_token)])
    b.loop.run_once(max_wait_ms=50)
    assert b.woken == []
    second = c.sync.wait("s:cv", thread=2)
    a.sync.broadcast("s:cv")
    b.run_until(lambda: b.woken == [(1, b_token)])
    c.run_until(lambda: c.woken[-1] == (2, second))


def test_object_mutexes_stay_in_the_process(scan):
    a = scan()
    assert a.sync.lock("o:17", co=1, thread=1) is None
    assert a.sync.lock("o:17", co=2, thread=2) is not None
    a.sync.done("o:17", co=1)
    assert a.woken and a.sync.running("o:17") == 2
    assert list(a.client.scan_iter(match=f"{a.sync._prefix}*")) == []


COUNTER_SCRIPT = """
local nmap = require "nmap"
local stdnse = require "stdnse"
description = "read, wait, write: loses updates unless the mutex serialises it"
categories = {"safe"}
hostrule = function() return true end
action = function(host)
  local mutex = nmap.mutex("counter")
  if USE_MUTEX then mutex "lock" end
  local value = nmap.registry.counter or 0
  stdnse.sleep(0.005)
  nmap.registry.counter = value + 1
  if USE_MUTEX then mutex "done" end
  return "counted " .. host.ip
end
"""

CHILD = """
import json, sys
from pathlib import Path
sys.path[:0] = [{repo!r}, {tests!r}]
import redis
from nse_support import NSELIB, host, run
from worker.cluster.registry import RedisRegistry
from worker.cluster.keys import scan_prefix, unlink_matching
from worker.cluster.sync import RedisSync
from worker.nse.engine import Engine, EngineOptions
from worker.nsock.loop import EventLoop

client = redis.Redis.from_url({url!r})
loop = EventLoop()
engine = Engine(loop, log=lambda line: print(line, file=sys.stderr), nselib_dirs=[NSELIB],
                registry=RedisRegistry(client, {scan!r}),
                sync=lambda ops: RedisSync(ops, loop, client, {scan!r}))
engine.configure(EngineOptions())
hosts = [host(f"127.0.{first}.{{n}}") for n in range(1, {hosts} + 1)]
done = run(Path({tmp!r}), {{"count": {source!r}}}, hosts=hosts, engine=engine)
print(json.dumps([s.output for h in hosts for s in h.scripts]))
"""


def count_in_processes(tmp_path, scan_id: str, use_mutex: bool, processes=3, hosts=15):
    source = COUNTER_SCRIPT.replace("USE_MUTEX", "true" if use_mutex else "false")
    children = []
    for index in range(processes):
        directory = tmp_path / f"p{index}"
        directory.mkdir()
        code = textwrap.dedent(CHILD).format(repo=str(REPO), tests=str(REPO / "tests"),
                                             url=REDIS_URL, scan=scan_id, first=index + 1,
                                             hosts=hosts, tmp=str(directory), source=source)
        children.append(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, cwd=REPO))
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        outputs += json.loads(out)
    client = redis.Redis.from_url(REDIS_URL)
    counter = client.hget(f"nsecluster:{scan_id}:reg:root", b"scounter")  # registry.counter
    client.close()
    delete_scan_keys(scan_id)
    return msgpack.unpackb(counter), outputs


def test_engine_processes_count_without_a_lost_update(tmp_path):
    counter, outputs = count_in_processes(tmp_path, f"test-{uuid.uuid4().hex}", use_mutex=True)
    assert len(outputs) == 45 and all(o.startswith("counted 127.0.") for o in outputs)
    assert counter == 45


def test_without_the_mutex_updates_are_lost(tmp_path):
    """The control: the same count without the lock loses updates, so the test above can fail."""
    counter, outputs = count_in_processes(tmp_path, f"test-{uuid.uuid4().hex}", use_mutex=False)
    assert len(outputs) == 45
    assert counter < 45
