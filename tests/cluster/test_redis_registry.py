"""The Redis registry across processes: what one Lua state writes, another reads; each scan
has its own; bad values and a missing Redis give the script a clear error."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import pytest
import redis
from nse_support import REPO, make_engine

from worker.cluster.registry import RedisRegistry
from worker.nse.engine import EngineOptions

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def scan_id(request):
    scan = f"test-{uuid.uuid4().hex}"
    client = redis.Redis.from_url(REDIS_URL)
    request.addfinalizer(lambda: (RedisRegistry(client, scan).delete(), client.close()))
    return scan


def lua_state(scan_id: str, url: str = REDIS_URL):
    """One engine's Lua state with the scan's registry; run(body) -> the body's values."""
    engine, _ = make_engine()
    backend = RedisRegistry(redis.Redis.from_url(url), scan_id)
    engine.registry_backend = backend
    runtime = engine.runtime

    def run(body: str):
        return runtime.lua.eval(f"function(registry) {body} end")(backend.lua_table(runtime))

    return engine, backend, run


def test_what_one_state_writes_the_other_reads(scan_id):
    _, _, first = lua_state(scan_id)
    _, _, second = lua_state(scan_id)
    first("""
      registry.hosts = {}
      registry.hosts["127.0.0.1"] = {title = "one"}
      kept = registry.hosts  -- a global alias, written through later
    """)
    assert second('return registry.hosts["127.0.0.1"].title') == b"one"
    second('registry.hosts["127.0.0.2"] = {title = "two"}; table.insert(registry.hosts, "x")')
    first('kept.after = "via alias"')
    assert first('local n = 0; for _ in pairs(registry.hosts) do n = n + 1 end; '
                 'return registry.hosts["127.0.0.2"].title, #registry.hosts, n') == (b"two", 1, 4)
    assert second("return registry.hosts.after") == b"via alias"


def test_appends_made_at_the_same_time_by_two_processes_both_land(scan_id):
    _, _, first = lua_state(scan_id)
    _, _, second = lua_state(scan_id)
    first('registry.list = {"start"}')
    first("n = #registry.list")  # both read the same length ...
    second("n = #registry.list")
    first('registry.list[n + 1] = "from first"')  # ... and both append after it
    second('registry.list[n + 1] = {by = "second"}')
    first('table.insert(registry.list, "inserted")')
    assert first('local l = registry.list; return #l, l[1], l[2], l[3].by, l[4]') == (
        4, b"start", b"from first", b"second", b"inserted")


def test_tables_created_if_absent_by_two_processes_become_one(scan_id):
    _, _, first = lua_state(scan_id)
    _, _, second = lua_state(scan_id)
    first("seen = registry.hosts or false")  # both find nothing ...
    second("seen = registry.hosts or false")
    first('registry.hosts = seen or {}; registry.hosts["127.0.0.1"] = "one"')  # ... both
    second('registry.hosts = seen or {["127.0.0.3"] = "three"}')  # create it: one table
    second('registry.hosts["127.0.0.2"] = "two"')
    assert first('local h = registry.hosts; return h["127.0.0.1"], h["127.0.0.2"], '
                 'h["127.0.0.3"]') == (b"one", b"two", b"three")
    # An ordinary overwrite still overwrites.
    first('registry.hosts = {fresh = true}')
    assert second('return registry.hosts.fresh, registry.hosts["127.0.0.1"]') == (True, None)


def test_each_scan_has_its_own_registry(scan_id):
    _, _, mine = lua_state(scan_id)
    _, other_backend, other = lua_state(scan_id + "-other")
    try:
        mine('registry.only = "mine"')
        assert other("return registry.only") is None
    finally:
        other_backend.delete()


def test_another_process_sees_the_writes(scan_id):
    _, _, run = lua_state(scan_id)
    run('registry.counter = {value = 41}')
    child = textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(REPO)!r}, {str(REPO / "tests")!r}]
        import redis
        from nse_support import make_engine
        from worker.cluster.registry import RedisRegistry
        engine, _ = make_engine()
        backend = RedisRegistry(redis.Redis.from_url({REDIS_URL!r}), {scan_id!r})
        table = backend.lua_table(engine.runtime)
        engine.runtime.lua.eval("function(r) r.counter.value = r.counter.value + 1 end")(table)
        print(engine.runtime.lua.eval("function(r) return r.counter.value end")(table))
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "42"
    assert run("return registry.counter.value") == 42


def test_the_scans_script_arguments_are_in_the_shared_registry(scan_id):
    engine, _, _ = lua_state(scan_id)
    engine.configure(EngineOptions(script_args={"http.useragent": "probe", "n": 3}))
    _, _, other = lua_state(scan_id)
    assert other('return registry.args["http.useragent"], registry.args.n') == (b"probe", 3)


def test_values_that_cannot_cross_processes_are_refused_and_nothing_is_written(scan_id):
    _, _, run = lua_state(scan_id)
    ok, message = run('return pcall(function() registry.bad = {fine = 1, f = print} end)')
    assert ok is False
    assert b"nmap.registry cannot share a function across processes" in message
    assert run("return registry.bad") is None
    ok, message = run('return pcall(function() registry.obj = setmetatable({}, {}) end)')
    assert ok is False and b"table with a metatable" in message


def test_a_table_key_keeps_its_entry_in_this_process(scan_id):
    """Nmap's http-auth-finder files URL objects (tables) as registry keys: the entry works in
    the process that made it, beside the shared ones, and stays out of the others."""
    _, _, first = lua_state(scan_id)
    _, _, second = lua_state(scan_id)
    assert first("""
      registry.auth_urls = {}
      url = setmetatable({}, {__tostring = function() return "http://x/" end})
      registry.auth_urls[url] = "FORM"
      registry.auth_urls.shared = "yes"
      local seen = {}
      for k, v in pairs(registry.auth_urls) do seen[#seen + 1] = tostring(k) .. "=" .. v end
      table.sort(seen)
      return registry.auth_urls[url], table.concat(seen, ",")
    """) == (b"FORM", b"http://x/=FORM,shared=yes")
    assert first("registry.auth_urls[url] = nil; return registry.auth_urls[url]") is None
    assert second("""
      local n = 0
      for _ in pairs(registry.auth_urls) do n = n + 1 end
      return n, registry.auth_urls.shared
    """) == (1, b"yes")


def test_a_missing_redis_is_the_scripts_error_not_a_crash(scan_id):
    _, _, run = lua_state(scan_id, url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    ok, message = run('return pcall(function() return registry.anything end)')
    assert ok is False
    assert b"nmap.registry: shared state unavailable (Error 111" in message
    ok, message = run('return pcall(function() registry.x = {y = 1} end)')
    assert ok is False and b"shared state unavailable" in message


def test_keys_expire_and_delete_removes_the_scan(scan_id):
    _, backend, run = lua_state(scan_id)
    run('registry.a = {b = {c = 1}}; registry.d = 2')
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"nsecluster:{scan_id}:reg:*"))
    assert len(keys) == 3  # the root and two nested tables
    assert all(0 < client.ttl(key) <= backend.ttl_s for key in keys)
    assert backend.delete() == 3
    assert list(client.scan_iter(match=f"nsecluster:{scan_id}:reg:*")) == []
    client.close()
