"""The script engine with real Lua: loading, environments, threads, runlevels, errors,
timeouts, worker threads, mutexes, condition variables, new_try, output (nse-spec §1, §4,
§7, §9)."""
from __future__ import annotations

import time

import pytest
from nse_support import host, load, make_engine, port_output, run, write_script

from worker.nse.engine import ERROR_OUTPUT
from worker.nse.profile import NMAP7
from worker.nse.scripts import ScriptLoadError

PORTRULE = "portrule = function(host, port) return true end\n"
HOSTRULE = "hostrule = function(host) return true end\n"


# -- loading ---------------------------------------------------------------------------------

@pytest.mark.parametrize("source, message", [
    ("portrule = function() end", "is missing required field: 'action'"),
    ("action = 'x'\n" + PORTRULE,
     "field 'action' is of improper type 'string', expected type 'function'"),
    ("action = function() end\ncategories = 'safe'\n" + PORTRULE,
     "field 'categories' is of improper type 'string', expected type 'table'"),
    ("action = function() end\ndependencies = 7\n" + PORTRULE,
     "field 'dependencies' is of improper type 'number', expected type 'table'"),
    ("action = function() end", "is missing required function: 'rule'"),
    ("action = function() end\nportrule = 5", "portrule must be a function!"),
    ("action = function() end\ncategories = {'safe', 3}\n" + PORTRULE,
     "has non-string entries in the 'categories' array"),
])
def test_malformed_scripts_get_nmaps_messages(tmp_path, source, message):
    engine, _ = make_engine()
    with pytest.raises(ScriptLoadError, match=message):
        load(engine, write_script(tmp_path, "bad", source))


def test_syntax_and_runtime_errors_at_load_are_fatal_with_the_traceback(tmp_path):
    engine, log = make_engine()
    with pytest.raises(ScriptLoadError, match="could not load script"):
        load(engine, write_script(tmp_path, "syntax", "action = function(\n"))
    with pytest.raises(ScriptLoadError, match="could not load script"):
        load(engine, write_script(tmp_path, "boom", "error('at load time')\n"))
    assert any(line.startswith("Failed to load") and "at load time" in line for line in log)


def test_metadata_and_defaults(tmp_path):
    engine, _ = make_engine()
    script = load(engine, write_script(tmp_path, "meta", """
        description = "does a thing"
        author = "someone"
        categories = {"Safe", "DISCOVERY"}
        dependencies = {"other"}
        hostrule = function() return false end
        action = function() end
    """))
    assert (script.id, script.description, script.author) == ("meta", "does a thing",
                                                              "someone")
    assert script.categories == ("safe", "discovery") and script.dependencies == ("other",)
    assert script.rules == {"hostrule"}
    bare = load(engine, write_script(tmp_path, "bare", "action = function() end\n" + PORTRULE))
    assert bare.categories == () and bare.dependencies == ()  # pre-seeded as {}


def test_non_nse_extension_warns(tmp_path):
    engine, log = make_engine()
    path = tmp_path / "plain.lua"
    path.write_text("action = function() end\n" + PORTRULE)
    assert load(engine, path).id == "plain"
    assert "the recommended file extension is '.nse'" in log[0]


def test_silent_require_skips_the_script_quietly(tmp_path):
    engine, log = make_engine()
    source = 'local stdnse = require "stdnse"\nstdnse.silent_require "no-such-module"\n' \
             'action = function() end\n' + PORTRULE
    from worker.nse.profile import SEED
    from worker.nse.scripts import load_script
    assert load_script(engine.runtime, str(write_script(tmp_path, "quiet", source)), SEED,
                       engine.log) is None
    assert log == []


# -- environments ------------------------------------------------------------------------------

def test_file_runs_again_per_thread_and_locals_are_per_thread(tmp_path):
    result = host(ports=[(22, "open"), (80, "open")])
    run(tmp_path, {"count": """
        local counter = 0
        counter = counter + 1
        global_in_env = (rawget(_ENV, "global_in_env") or 0) + 1
        portrule = function() return true end
        action = function() return counter .. "/" .. global_in_env .. "/" .. SCRIPT_TYPE end
    """}, [result])
    assert port_output(result, 22) == port_output(result, 80) == {"count": "1/1/portrule"}


def test_globals_are_strict_and_stdnse_is_not_global(tmp_path):
    result = host(ports=[(22, "open")])
    run(tmp_path, {"strict": """
        portrule = function() return true end
        action = function()
          local ok1, err1 = pcall(function() return undeclared_name end)
          local ok2, err2 = pcall(function() return stdnse end)
          return tostring(ok1) .. "|" .. err1 .. "|" .. tostring(ok2) .. "|" .. err2
        end
    """}, [result])
    out = port_output(result, 22)["strict"]
    assert out.count("false") == 2
    assert "variable 'undeclared_name' is not declared" in out
    assert "variable 'stdnse' is not declared" in out


def test_script_type_is_absent_while_loading(tmp_path):
    engine, _ = make_engine()
    with pytest.raises(ScriptLoadError):
        load(engine, write_script(tmp_path, "early", "local t = SCRIPT_TYPE\n"
                                  "action = function() end\n" + PORTRULE))


def test_script_name_and_path(tmp_path):
    result = host(ports=[(22, "open")])
    run(tmp_path, {"named": PORTRULE + "action = function() return SCRIPT_NAME .. ' ' .. "
                             "SCRIPT_PATH end"}, [result])
    assert port_output(result, 22)["named"] == f"named {tmp_path}/named.nse"


# -- rules, arguments, forcing, ports ---------------------------------------------------------

def test_rules_see_copies_and_only_interesting_ports(tmp_path):
    result = host(ports=[(22, "open", "ssh"), (23, "closed"), (24, "filtered"),
                         (25, "open|filtered"), (26, "unfiltered")])
    run(tmp_path, {"ports": """
        portrule = function(host, port) host.ip = "changed" ; port.number = -1 ; return true end
        action = function(host, port)
          return host.ip .. " " .. port.number .. " " .. port.state
        end
    """}, [result])
    # The rule's changes went to its own copies; the action got the same copies.
    assert {p.portid: [s.output for s in p.scripts] for p in result.ports} == {
        22: ["changed -1 open"], 23: [], 24: [], 25: ["changed -1 open|filtered"],
        26: ["changed -1 unfiltered"]}
    assert result.address == "127.0.0.1"


def test_rule_false_means_no_output_and_forced_scripts_skip_the_rule(tmp_path):
    result = host(ports=[(22, "open")])
    engine, _ = make_engine()
    run(tmp_path, {"never": "portrule = function() return false end\n"
                            "action = function() return 'ran' end"}, [result], engine=engine)
    assert port_output(result, 22) == {}
    run(tmp_path, {"never": "portrule = function() return false end\n"
                            "action = function() return 'ran' end"}, [result], engine=engine,
        attributes={"never": {"forced": True}})
    assert port_output(result, 22) == {"never": "ran"}


def test_hostrule_output_and_host_table_fields(tmp_path):
    result = host(targetname="localhost", srtt_us=67, rttvar_us=30, timeout_us=100000)
    result.hostnames = [("localhost", "user"), ("lh.example", "PTR")]
    run(tmp_path, {"fields": HOSTRULE + """
        action = function(host)
          return table.concat({host.ip, host.name, host.targetname, #host.bin_ip,
                               #host.bin_ip_src, tostring(host.times.srtt),
                               type(host.registry), host.interface,
                               tostring(host.directly_connected)}, " ")
        end
    """}, [result])
    assert result.scripts[0].output == \
        "127.0.0.1 lh.example localhost 4 4 6.7e-05 table lo true"


def test_prerule_and_postrule_results_are_returned(tmp_path):
    out = run(tmp_path, {"pre": "prerule = function() return true end\n"
                                "action = function() return 'before' end"}, phase="prerule")
    assert [(r.id, r.output) for r in out.results] == [("pre", "before")]


def test_runlevels_run_in_order(tmp_path):
    result = host(ports=[(22, "open")])
    engine, _ = make_engine()
    later = load(engine, write_script(tmp_path, "later", PORTRULE + """
        action = function() return tostring(nmap.registry.first) end"""), runlevel=2)
    first = load(engine, write_script(tmp_path, "first", PORTRULE + """
        action = function() stdnse_sleep(0.05) nmap.registry.first = 'done' end
        stdnse_sleep = nmap.socket.sleep"""), runlevel=1)
    from nse_support import hosts_index
    engine.run_pass("scan", [later, first], hosts_index(engine, [result]))
    assert port_output(result, 22) == {"later": "done"}


# -- outcomes ----------------------------------------------------------------------------------

def test_errors_give_the_error_output_at_debug_0_and_a_traceback_at_debug_1(tmp_path):
    failing = {"fails": PORTRULE + "action = function() error('kaput') end",
               "rulefails": "portrule = function() error('in rule') end\n"
                            "action = function() end"}
    result = host(ports=[(22, "open")])
    run(tmp_path, failing, [result])
    assert port_output(result, 22) == {"fails": ERROR_OUTPUT, "rulefails": ERROR_OUTPUT}
    result = host(ports=[(22, "open")])
    out = run(tmp_path, failing, [result], debugging=1)
    assert port_output(result, 22) == {}
    assert "NSE: fails against 127.0.0.1:22 threw an error!" in out.lines()
    assert "kaput" in out.lines() and "stack traceback" in out.lines()


def test_uncaught_try_ends_silently_with_the_reason_at_debug(tmp_path):
    source = PORTRULE + """
        action = function()
          local try = nmap.new_try(function() nmap.registry.cleaned = true end)
          try(false, "the reason")
          return "not reached"
        end"""
    result = host(ports=[(22, "open")])
    out = run(tmp_path, {"tries": source}, [result], profile=NMAP7)
    assert port_output(result, 22) == {} and out.log == []
    assert out.engine.runtime.globals[b"nmap"][b"registry"][b"cleaned"] is True
    result = host(ports=[(22, "open")])
    out = run(tmp_path, {"tries": source}, [result], profile=NMAP7, debugging=1)
    assert "NSE: Finished tries against 127.0.0.1:22. Reason: the reason" in out.lines()
    # The seed shows the reason at verbosity 1 already.
    result = host(ports=[(22, "open")])
    out = run(tmp_path, {"tries": source}, [result], verbosity=1)
    assert "Reason: the reason" in out.lines()


def test_new_try_values_and_the_exception_table(tmp_path):
    result = host(ports=[(22, "open")])
    run(tmp_path, {"tryvals": PORTRULE + """
        action = function()
          local try = nmap.new_try()
          local a, b = try(true, 1, 2)
          local c = select("#", try(true))
          local d, e = try(7, 8, 9)
          local ok, err = pcall(try, nil, "why")
          return table.concat({a, b, c, d, e, tostring(ok), err.errtype, err.message}, ",")
        end"""}, [result])
    assert port_output(result, 22)["tryvals"] == "1,2,0,8,9,false,nmap.new_try,why"


def test_output_forms(tmp_path):
    result = host(ports=[(22, "open")])
    run(tmp_path, {
        "nothing": PORTRULE + "action = function() return nil end",
        "text": PORTRULE + "action = function() return 'plain' end",
        "falsy": PORTRULE + "action = function() return false end",
        "custom": PORTRULE + "action = function() return {a='b'}, 'custom string' end",
        "nested": PORTRULE + "action = function() return {'x', {'y', k='v'}, key='val'} end",
    }, [result])
    outputs = {s.id: (s.output, s.structured) for s in result.ports[0].scripts}
    assert "nothing" not in outputs
    assert outputs["text"] == ("plain", None)
    assert outputs["falsy"] == ("false", "false")
    assert outputs["custom"] == ("custom string", [["a", "b"]])
    assert outputs["nested"][0] == "\n  x\n  \n    y\n    k: v\n  key: val"
    assert outputs["nested"][1] == [[None, "x"], [None, [[None, "y"], ["k", "v"]]],
                                    ["key", "val"]]


def test_a_plain_yield_at_base_level_ends_the_thread(tmp_path):
    result = host(ports=[(22, "open")])
    out = run(tmp_path, {"stray": PORTRULE + "action = function() coroutine.yield() "
                                             "return 'no' end"}, [result], debugging=1)
    assert port_output(result, 22) == {}
    assert "stray yielded unexpectedly and cannot be resumed." in out.lines()


def test_nested_coroutines_can_wait(tmp_path):
    result = host(ports=[(22, "open")])
    run(tmp_path, {"nested": PORTRULE + """
        action = function()
          local inner = coroutine.wrap(function()
            nmap.socket.sleep(0.01)
            coroutine.yield("first")
            nmap.socket.sleep(0.01)
            return "second"
          end)
          local co = coroutine.create(function(x) nmap.socket.sleep(0.01) return x * 2 end)
          local ok, doubled = coroutine.resume(co, 21)
          return inner() .. " " .. inner() .. " " .. tostring(ok) .. " " .. doubled
        end"""}, [result])
    assert port_output(result, 22)["nested"] == "first second true 42"


# -- timeouts ------------------------------------------------------------------------------

def test_script_timeout_kills_a_waiting_thread(tmp_path):
    result = host(ports=[(22, "open")])
    started = time.monotonic()
    out = run(tmp_path, {"slow": PORTRULE + "action = function() nmap.socket.sleep(30) "
                                            "return 'late' end",
                         "quick": PORTRULE + "action = function() return 'ok' end"},
              [result], script_timeout_ms=200, debugging=1)
    assert time.monotonic() - started < 5
    assert port_output(result, 22) == {"quick": "ok"}
    assert "slow against 127.0.0.1:22 timed out" in out.lines()


def test_a_cpu_loop_is_ended_by_its_timeout_and_others_finish(tmp_path):
    result = host(ports=[(22, "open"), (23, "open")])
    started = time.monotonic()
    run(tmp_path, {"spin": """
        portrule = function(host, port) return port.number == 22 end
        action = function()
          while true do pcall(function() for i = 1, 1000 do end end) end
        end""",
                   "other": """
        portrule = function(host, port) return port.number == 23 end
        action = function() nmap.socket.sleep(0.05) return 'done' end"""},
        [result], script_timeout_ms=500)
    assert time.monotonic() - started < 10
    assert port_output(result, 23) == {"other": "done"}
    assert port_output(result, 22) == {}


# -- worker threads ------------------------------------------------------------------------

def test_worker_threads_run_and_report_their_status(tmp_path):
    result = host(ports=[(22, "open")])
    run(tmp_path, {"workers": PORTRULE + """
        local stdnse = require "stdnse"
        action = function(host, port)
          local done = {}
          local condvar = nmap.condvar(done)
          local function work(n)
            stdnse.sleep(0.01 * n)
            done[#done + 1] = n .. (stdnse.isworker() and "w" or "m")
            condvar "signal"
          end
          local threads = {}
          for n = 1, 3 do
            local co, info = stdnse.new_thread(work, n)
            threads[#threads + 1] = info
          end
          local _, failing_info = stdnse.new_thread(function() error("worker fails") end)
          while #done < 3 do condvar "wait" end
          stdnse.sleep(0.01)
          local status, err = failing_info()
          local h, p = stdnse.gethostport()
          return table.concat(done, ",") .. " " .. threads[1]() .. " " .. status .. " " ..
                 tostring(err):match("worker fails") .. " " .. stdnse.getid() .. " " ..
                 h.ip .. ":" .. p.number .. " " .. tostring(stdnse.isworker())
        end"""}, [result])
    assert port_output(result, 22)["workers"] == \
        "1w,2w,3w dead dead worker fails workers 127.0.0.1:22 false"


def test_new_thread_outside_a_script_thread_raises(tmp_path):
    engine, _ = make_engine()
    with pytest.raises(ScriptLoadError):
        load(engine, write_script(tmp_path, "early", 'require("stdnse").new_thread(print)\n'
                                  "action = function() end\n" + PORTRULE))


# -- mutexes and condition variables ----------------------------------------------------------

def test_mutex_serializes_fifo_and_reports_the_holder(tmp_path):
    result = host(ports=[(p, "open") for p in range(1, 6)])
    run(tmp_path, {"locks": PORTRULE + """
        local m = nmap.mutex("shared")
        action = function(host, port)
          m "lock"
          local mine = m "running" == coroutine.running()
          nmap.registry.inside = (nmap.registry.inside or 0) + 1
          local overlap = nmap.registry.inside
          nmap.socket.sleep(0.01)
          nmap.registry.inside = nmap.registry.inside - 1
          nmap.registry.order = (nmap.registry.order or "") .. port.number
          m "done"
          return tostring(mine) .. overlap
        end"""}, [result])
    assert {p.portid: p.scripts[0].output for p in result.ports} == \
        {n: "true1" for n in range(1, 6)}


def test_mutex_ops_and_errors(tmp_path):
    result = host(ports=[(22, "open")])
    run(tmp_path, {"mops": PORTRULE + """
        action = function()
          local m = nmap.mutex("ops")
          local same = nmap.mutex("ops") == m
          local a = m "trylock"
          local b = m "trylock"
          local ok1, e1 = pcall(m, "bogus")
          m "done"
          local ok2, e2 = pcall(m, "done")
          local ok3, e3 = pcall(nmap.mutex, 5)
          local ok4, e4 = pcall(nmap.mutex, nil)
          return table.concat({tostring(same), tostring(a), tostring(b), e1, e2, e3, e4}, "|")
        end"""}, [result])
    assert port_output(result, 22)["mops"] == (
        "true|true|false|bad argument #1 to '?' (invalid option 'bogus')|"
        "do not have a lock on this mutex|"
        "bad argument #1 to 'nmap.mutex' (object expected)|"
        "bad argument #1 to 'nmap.mutex' (object expected)")


def test_a_dead_threads_locks_pass_on(tmp_path):
    result = host(ports=[(1, "open"), (2, "open")])
    run(tmp_path, {"dies": PORTRULE + """
        action = function(host, port)
          local m = nmap.mutex("held")
          if port.number == 1 then
            m "lock"
            error("dies holding the lock")
          end
          nmap.socket.sleep(0.02)
          m "lock"
          m "done"
          return "got it"
        end"""}, [result])
    assert port_output(result, 2) == {"dies": "got it"}


def test_condvar_signal_wakes_the_latest_waiter_and_broadcast_all(tmp_path):
    result = host(ports=[(p, "open") for p in (1, 2, 3, 4)])
    run(tmp_path, {"cv": PORTRULE + """
        local key = "cv"
        action = function(host, port)
          local cv = nmap.condvar(key)
          local r = nmap.registry
          r.woken = r.woken or ""
          if port.number < 4 then
            cv "wait"
            r.woken = r.woken .. port.number
            nmap.socket.sleep(0.2)  -- ending now would broadcast (see the next test)
            return "woke"
          end
          nmap.socket.sleep(0.02)
          cv "signal"
          nmap.socket.sleep(0.02)
          local first = r.woken
          cv "broadcast"
          nmap.socket.sleep(0.02)
          return first .. " " .. #r.woken
        end"""}, [result])
    assert port_output(result, 4)["cv"] == "3 3"  # LIFO: the last to wait went first


# -- registry and host.registry ---------------------------------------------------------------

def test_registry_lives_across_passes_and_host_registry_is_per_host(tmp_path):
    engine, _ = make_engine()
    first, second = host("127.0.0.1", [(22, "open")]), host("127.0.0.2", [(22, "open")])
    source = PORTRULE + """
        action = function(host)
          nmap.registry.seen = (nmap.registry.seen or 0) + 1
          host.registry.mine = (host.registry.mine or 0) + 1
          return nmap.registry.seen .. " " .. host.registry.mine
        end"""
    run(tmp_path, {"reg": source}, [first], engine=engine)
    run(tmp_path, {"reg": source}, [second], engine=engine)
    assert port_output(first, 22)["reg"] == "1 1"
    assert port_output(second, 22)["reg"] == "2 1"


def test_a_threads_end_broadcasts_the_condvars_it_used(tmp_path):
    result = host(ports=[(1, "open"), (2, "open")])
    run(tmp_path, {"ends": PORTRULE + """
        action = function(host, port)
          local cv = nmap.condvar("ending")
          if port.number == 1 then
            cv "wait"  -- nobody signals: port 2's thread ending wakes it
            return "woken by an ending thread"
          end
          nmap.socket.sleep(0.02)
        end"""}, [result])
    assert port_output(result, 1) == {"ends": "woken by an ending thread"}


# -- what finished threads leave behind ------------------------------------------------------

def test_finished_threads_leave_no_garbage_cycles(tmp_path, listeners):
    """A thread that connects, reads (or times out) and closes is freed by reference counting
    alone: per-thread cycles would make the collector's full passes grow with the scan and
    cost a fifth of the script phase (bench/nse.py)."""
    import gc

    from worker.nse.engine import Thread

    port = listeners.listen("127.0.0.1")
    script = PORTRULE + """
        action = function(host, port)
          local s = nmap.new_socket()
          s:set_timeout(100)
          assert(s:connect(host, port))
          local ok, err = s:receive()  -- the listener never sends: a timeout
          s:close()
          stdnse.sleep(0.01)
          return tostring(ok) .. " " .. tostring(err)
        end"""
    result = host(ports=[(port, "open")])
    engine, _ = make_engine()
    gc.collect()
    gc.disable()
    try:
        run(tmp_path, {"leaks": "local stdnse = require 'stdnse'\n" + script}, [result],
            engine=engine)
        assert port_output(result, port)["leaks"] == "nil TIMEOUT"
        assert len(engine.ops) == 0 and not engine.ops._by_thread  # nothing left pending
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        leaked = [o for o in gc.garbage if isinstance(o, Thread)
                  or type(o).__name__ in ("ScriptPass", "NsockSocket", "Op", "_ConnectAttempt")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert leaked == []


def test_a_pass_stopped_by_an_exception_ends_its_threads_and_frees_their_locks(tmp_path):
    """Ctrl-C, or a cluster task's time limit, raised while scripts wait: nothing of the pass
    stays behind in the engine (a worker process goes on to run other tasks)."""
    engine, _ = make_engine()

    def interrupt():
        raise KeyboardInterrupt

    engine.loop.call_later(200, interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, {"holder": HOSTRULE + """
            local nmap = require "nmap"
            local stdnse = require "stdnse"
            action = function()
              nmap.mutex("shared") "lock"
              stdnse.sleep(30)
            end"""}, hosts=[host("127.0.0.1"), host("127.0.0.2")], engine=engine)
    assert engine.threads == {}
    assert engine.sync_backend.running("s:shared") is None
    assert engine.sync_backend.lock("s:shared", co=1, thread=99) is None  # free at once
