"""The suite every shared-state backend passes (worker/nse/backends.py): the memory backends
here; the cluster's Redis backends join ``SYNC_BACKENDS``/``REGISTRY_BACKENDS``."""
from __future__ import annotations

import pytest
from nse_support import make_engine

from worker.nse.api.base import ScriptError
from worker.nse.api.registry import MemoryRegistry
from worker.nse.api.sync import MemorySync
from worker.nse.ops import Operations

SYNC_BACKENDS = {"memory": MemorySync}
REGISTRY_BACKENDS = {"memory": MemoryRegistry}


class Woken(list):
    """The engine's side of Operations: (thread, token) in the order threads were woken."""

    def __call__(self, thread, token, results):
        self.append((thread, token))


@pytest.fixture(params=sorted(SYNC_BACKENDS))
def sync(request):
    woken = Woken()
    ops = Operations(woken)
    return SYNC_BACKENDS[request.param](ops), ops, woken


def test_lock_is_first_come_first_served(sync):
    backend, ops, woken = sync
    assert backend.lock("k", co=1, thread=10) is None
    assert backend.running("k") == 1
    second = backend.lock("k", co=2, thread=20)
    third = backend.lock("k", co=3, thread=30)
    assert second is not None and third is not None and woken == []
    backend.done("k", co=1)
    assert woken == [(20, second)] and backend.running("k") == 2
    backend.done("k", co=2)
    assert woken[-1] == (30, third) and backend.running("k") == 3
    backend.done("k", co=3)
    assert backend.running("k") is None
    assert backend.lock("k", co=4, thread=40) is None  # free again


def test_done_without_the_lock_is_the_scripts_error(sync):
    backend, _, _ = sync
    with pytest.raises(ScriptError, match="^do not have a lock on this mutex$"):
        backend.done("never-taken", co=1)
    backend.lock("k", co=1, thread=10)
    with pytest.raises(ScriptError, match="^do not have a lock on this mutex$"):
        backend.done("k", co=2)
    assert backend.running("k") == 1


def test_trylock_never_waits(sync):
    backend, ops, _ = sync
    assert backend.trylock("k", co=1, thread=10) is True
    assert backend.trylock("k", co=2, thread=20) is False
    assert len(ops) == 0
    backend.done("k", co=1)
    assert backend.trylock("k", co=2, thread=20) is True


def test_a_dead_waiter_is_passed_over(sync):
    backend, ops, woken = sync
    backend.lock("k", co=1, thread=10)
    backend.lock("k", co=2, thread=20)
    third = backend.lock("k", co=3, thread=30)
    ops.cancel_thread(20)
    backend.done("k", co=1)
    assert woken == [(30, third)] and backend.running("k") == 3


def test_a_threads_end_passes_on_every_lock_its_coroutines_held(sync):
    backend, _, woken = sync
    backend.lock("a", co=1, thread=10)
    backend.lock("b", co=2, thread=10)  # another coroutine of the same thread
    waiting_a = backend.lock("a", co=5, thread=50)
    backend.lock("c", co=6, thread=60)
    backend.release_thread(10)
    assert woken == [(50, waiting_a)]
    assert backend.running("a") == 5 and backend.running("b") is None
    assert backend.running("c") == 6


def test_signal_wakes_the_latest_living_waiter_and_broadcast_the_rest(sync):
    backend, ops, woken = sync
    backend.signal("cv")  # nobody waits: nothing happens
    first = backend.wait("cv", thread=10)
    second = backend.wait("cv", thread=20)
    third = backend.wait("cv", thread=30)
    fourth = backend.wait("cv", thread=40)
    ops.cancel_thread(40)
    backend.signal("cv")
    assert woken == [(30, third)]
    backend.broadcast("cv")
    assert sorted(woken[1:]) == [(10, first), (20, second)]
    backend.signal("cv")
    assert len(woken) == 3 and fourth not in [t for _, t in woken]


def test_keys_are_independent(sync):
    backend, _, woken = sync
    backend.lock("a", co=1, thread=10)
    assert backend.lock("b", co=2, thread=20) is None
    sleeper = backend.wait("a", thread=30)
    backend.signal("b")
    assert woken == []
    backend.signal("a")
    assert woken == [(30, sleeper)]


@pytest.mark.parametrize("name", sorted(REGISTRY_BACKENDS))
def test_registry_is_one_table_for_every_caller(name):
    engine, _ = make_engine()
    backend = REGISTRY_BACKENDS[name]()
    table = backend.lua_table(engine.runtime)
    table[b"seen"] = 1
    again = backend.lua_table(engine.runtime)
    assert again[b"seen"] == 1
