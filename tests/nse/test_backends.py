"""The suite every shared-state backend passes (worker/nse/backends.py): the memory backends
here; the cluster's Redis backends join ``SYNC_BACKENDS``/``REGISTRY_BACKENDS``."""
from __future__ import annotations

import uuid

import pytest
import redis
from nse_support import make_engine

from worker.cluster.keys import scan_prefix, unlink_matching
from worker.cluster.registry import RedisRegistry
from worker.cluster.sync import RedisSync
from worker.nse.api.base import ScriptError
from worker.nse.api.registry import MemoryRegistry
from worker.nse.api.sync import MemorySync
from worker.nse.ops import Operations
from worker.nsock.loop import EventLoop

REDIS_URL = "redis://127.0.0.1:6379/0"  # .ci/setup starts it; a missing Redis fails the tests


@pytest.fixture(scope="module")
def redis_client():
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    yield client
    client.close()


def redis_registry(request):
    backend = RedisRegistry(request.getfixturevalue("redis_client"), f"test-{uuid.uuid4().hex}")
    request.addfinalizer(backend.delete)
    return backend


def redis_sync(ops, request):
    client = request.getfixturevalue("redis_client")
    scan = f"test-{uuid.uuid4().hex}"
    backend = RedisSync(ops, EventLoop(), client, scan)

    def clean_up():
        backend.close()
        unlink_matching(client, scan_prefix(scan) + "*")
    request.addfinalizer(clean_up)
    return backend


SYNC_BACKENDS = {"memory": lambda ops, request: MemorySync(ops), "redis": redis_sync}
REGISTRY_BACKENDS = {"memory": lambda request: MemoryRegistry(), "redis": redis_registry}


class Woken(list):
    """The engine's side of Operations: (thread, token) in the order threads were woken."""

    def __call__(self, thread, token, results):
        self.append((thread, token))


@pytest.fixture(params=sorted(SYNC_BACKENDS))
def sync(request):
    woken = Woken()
    ops = Operations(woken)
    return SYNC_BACKENDS[request.param](ops, request), ops, woken


def test_lock_is_first_come_first_served(sync):
    backend, ops, woken = sync
    assert backend.lock("s:k", co=1, thread=10) is None
    assert backend.running("s:k") == 1
    second = backend.lock("s:k", co=2, thread=20)
    third = backend.lock("s:k", co=3, thread=30)
    assert second is not None and third is not None and woken == []
    backend.done("s:k", co=1)
    assert woken == [(20, second)] and backend.running("s:k") == 2
    backend.done("s:k", co=2)
    assert woken[-1] == (30, third) and backend.running("s:k") == 3
    backend.done("s:k", co=3)
    assert backend.running("s:k") is None
    assert backend.lock("s:k", co=4, thread=40) is None  # free again


def test_done_without_the_lock_is_the_scripts_error(sync):
    backend, _, _ = sync
    with pytest.raises(ScriptError, match="^do not have a lock on this mutex$"):
        backend.done("s:never-taken", co=1)
    backend.lock("s:k", co=1, thread=10)
    with pytest.raises(ScriptError, match="^do not have a lock on this mutex$"):
        backend.done("s:k", co=2)
    assert backend.running("s:k") == 1


def test_trylock_never_waits(sync):
    backend, ops, _ = sync
    assert backend.trylock("s:k", co=1, thread=10) is True
    assert backend.trylock("s:k", co=2, thread=20) is False
    assert len(ops) == 0
    backend.done("s:k", co=1)
    assert backend.trylock("s:k", co=2, thread=20) is True


def test_a_dead_waiter_is_passed_over(sync):
    backend, ops, woken = sync
    backend.lock("s:k", co=1, thread=10)
    backend.lock("s:k", co=2, thread=20)
    third = backend.lock("s:k", co=3, thread=30)
    ops.cancel_thread(20)
    backend.done("s:k", co=1)
    assert woken == [(30, third)] and backend.running("s:k") == 3


def test_a_threads_end_passes_on_every_lock_its_coroutines_held(sync):
    backend, _, woken = sync
    backend.lock("s:a", co=1, thread=10)
    backend.lock("s:b", co=2, thread=10)  # another coroutine of the same thread
    waiting_a = backend.lock("s:a", co=5, thread=50)
    backend.lock("s:c", co=6, thread=60)
    backend.release_thread(10)
    assert woken == [(50, waiting_a)]
    assert backend.running("s:a") == 5 and backend.running("s:b") is None
    assert backend.running("s:c") == 6


def test_signal_wakes_the_latest_living_waiter_and_broadcast_the_rest(sync):
    backend, ops, woken = sync
    backend.signal("s:cv")  # nobody waits: nothing happens
    first = backend.wait("s:cv", thread=10)
    second = backend.wait("s:cv", thread=20)
    third = backend.wait("s:cv", thread=30)
    fourth = backend.wait("s:cv", thread=40)
    ops.cancel_thread(40)
    backend.signal("s:cv")
    assert woken == [(30, third)]
    backend.broadcast("s:cv")
    assert sorted(woken[1:]) == [(10, first), (20, second)]
    backend.signal("s:cv")
    assert len(woken) == 3 and fourth not in [t for _, t in woken]


def test_keys_are_independent(sync):
    backend, _, woken = sync
    backend.lock("s:a", co=1, thread=10)
    assert backend.lock("s:b", co=2, thread=20) is None
    sleeper = backend.wait("s:a", thread=30)
    backend.signal("s:b")
    assert woken == []
    backend.signal("s:a")
    assert woken == [(30, sleeper)]


@pytest.fixture(params=sorted(REGISTRY_BACKENDS))
def registry(request):
    """(registry backend, a Lua runtime, run(lua_body, registry table) -> the body's values)."""
    engine, _ = make_engine()
    backend = REGISTRY_BACKENDS[request.param](request)
    runtime = engine.runtime

    def run(body: str, *args):
        function = runtime.lua.eval(f"function(registry, ...) {body} end")
        return function(backend.lua_table(runtime), *args)

    return backend, runtime, run


def test_registry_is_one_table_for_every_caller(registry):
    backend, runtime, _ = registry
    table = backend.lua_table(runtime)
    table[b"seen"] = 1
    again = backend.lua_table(runtime)
    assert again[b"seen"] == 1


def test_nested_writes_land(registry):
    _, _, run = registry
    assert run("""
      registry.demo = registry.demo or {}
      registry.demo["127.0.0.1"] = {port = 80, names = {"a", "b"}}
      registry.demo["127.0.0.1"].names[3] = "c"
      local entry = registry.demo["127.0.0.1"]
      return entry.port, table.concat(entry.names, ","), registry.demo["127.0.0.2"]
    """) == (80, b"a,b,c", None)


def test_insert_length_ipairs_and_remove_behave_as_on_a_local_table(registry):
    _, _, run = registry
    assert run("""
      registry.list = {}
      for i = 1, 5 do table.insert(registry.list, "v" .. i) end
      table.insert(registry.list, 1, "v0")
      local seen = {}
      for i, v in ipairs(registry.list) do seen[#seen + 1] = i .. "=" .. v end
      local removed = table.remove(registry.list)
      return #registry.list, table.concat(seen, " "), removed, #{}
    """) == (5, b"1=v0 2=v1 3=v2 4=v3 5=v4 6=v5", b"v5", 0)


def test_pairs_gives_every_key_with_its_type(registry):
    _, _, run = registry
    listed = run("""
      registry.t = {[1] = "one", [2.5] = "float", [true] = "yes", ["a\\0b"] = "nul",
                    big = math.maxinteger, neg = -3, pi = 3.25, flag = false, bin = "\\255\\0"}
      registry.t[2.0] = "two"  -- a float key with an integral value is the integer key
      local out = {}
      for k, v in pairs(registry.t) do
        out[#out + 1] = ("%s:%s=%s:%s"):format(math.type(k) or type(k), tostring(k),
                                               math.type(v) or type(v), tostring(v))
      end
      table.sort(out)
      return table.concat(out, "|")
    """)
    assert listed.split(b"|") == sorted([
        b"integer:1=string:one", b"integer:2=string:two", b"float:2.5=string:float",
        b"boolean:true=string:yes", b"string:a\0b=string:nul",
        b"string:big=integer:9223372036854775807", b"string:neg=integer:-3",
        b"string:pi=float:3.25", b"string:flag=boolean:false", b"string:bin=string:\xff\0"])


def test_a_table_kept_by_the_script_still_writes_into_the_registry(registry):
    _, _, run = registry
    assert run("""
      local mine, inner = {}, {}
      mine.inner = inner
      registry.kept = mine
      mine.later = "yes"
      inner.deep = 7
      return registry.kept.later, registry.kept.inner.deep, registry.kept == mine
    """) == (b"yes", 7, True)


def test_shared_subtables_and_cycles_stay_one_table(registry):
    _, _, run = registry
    assert run("""
      local a, shared = {}, {n = 1}
      a.self, a.left, a.right = a, shared, shared
      registry.a = a
      registry.a.left.n = 2
      return registry.a.self == registry.a, registry.a.right.n, registry.a == registry.a
    """) == (True, 2, True)


def test_assigning_nil_removes_the_key(registry):
    _, _, run = registry
    assert run("""
      registry.gone = {x = 1}
      registry.gone = nil
      local keys = 0
      for k in pairs(registry) do if k == "gone" then keys = keys + 1 end end
      return registry.gone, keys
    """) == (None, 0)
