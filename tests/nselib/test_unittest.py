"""nselib/unittest.lua: the assertion helpers, test suites and run_tests, compared with Nmap's."""
import textwrap

from nse_support import LUA_OUTPUT, _lua_check_source, run, run_lua, run_lua_nmap

PRELUDE = '''local u = require "unittest"
''' + LUA_OUTPUT + r''''''

ASSERTIONS = PRELUDE + '''
p(u.equal(1,2)()) p(u.equal(1,1)()) p(u.equal(nil,5)()) p(u.equal(5,nil)())
p(u.not_equal(false,false)()) p(u.not_equal("a","a")()) p(u.not_equal(1,2)())
p(u.is_true(nil)()) p(u.is_true("x")()) p(u.is_true(1)()) p(u.is_true(true)())
p(u.is_false(0)()) p(u.is_false(nil)()) p(u.is_false(false)())
p(u.is_nil(false)()) p(u.is_nil(nil)()) p(u.not_nil(nil)()) p(u.not_nil(false)())
p(u.type_is("string", 1)()) p(u.type_is("table", "x")()) p(u.type_is("number", 1)())
p(u.lt(1,2)()) p(u.lt(2,1)()) p(u.lte(2,2)()) p(u.lte(3,2)())
p(u.length_is({1,2,3}, 3)()) p(u.length_is({1,2}, 3)()) p(u.length_is("ab", 3)())
p(u.table_equal({1,2,a=3},{1,2,a=4})()) p(u.table_equal({1,2},{1,2,3})())
p(u.table_equal({1,2},{1,3})()) p(u.table_equal({},{})())
p(u.keys_equal({a=1,b=2},{a=1,b=2})()) p(u.keys_equal({a=1,b=2},{a=1,b=3})())
p(u.keys_equal({a=1},{a=1,b=3})()) p(u.keys_equal({a=1,b=3},{a=1})())
p(u.identical({1,{2,{3}},a={b=1}},{1,{2,{3}},a={b=1}})())
p(u.identical({1,{2,{3}}},{1,{2,{4}}})()) p(u.identical(1,2)()) p(u.identical({},{1})())
p(u.identical({a=1},{b=1})()) p(u.identical({1},{"1"})()) p(u.identical({},1)())
p(u.identical({a={b=1}},{a={b=1,c=2}})()) p(u.identical(nil,nil)())
p(u.expected_failure(u.equal(1,2))()) p(u.expected_failure(u.equal(1,1))())
p(u.equal({1,{2,3},a="b"}, {})()) p(u.equal("a\\nb\\"c\\0", {{{}}, "x"})())
p(u.equal({a=false}, 1.5)())
local mt = u.make_test(function(a) return a == 5 end, "%s is not five")
p(type(mt), type(mt(5)), mt(5)(), mt(4)())
local two = u.make_test(function(a, b) return a == b end, "%s ~= %s")
p(two(1, 2)(), two("x", "x")())
return table.concat(out, "\\n")
'''


def test_assertions_give_nmaps_results_and_messages(tmp_path):
    ours = run_lua(tmp_path, ASSERTIONS)
    lines = ours.split("\n")
    assert lines[0:3] == ["false | 1", " not equal to 2", ""]
    assert "false | nil not equal to nil" in lines  # arguments after the first nil show nil
    assert "false | Values of <top>[\"2\"][\"2\"][\"1\"] are not equal: 3 ~= 4" in lines
    assert run_lua_nmap(tmp_path, ASSERTIONS) == ours


SUITES = PRELUDE + '''
p(u.testing())
local s = u.TestSuite:new()
p(type(s), getmetatable(s) == u.TestSuite, type(rawget(s, "tests")))
s:add_test(u.equal(1,1), "one is one")
s:add_test(u.equal(1,2), "one is two")
s:add_test(u.is_true(true))
s:add_test(function() return true end, "plain")
s:add_test(function() return false end, "plainf")
s:add_test(function() return nil end)
s:add_test(function() return 1 end, "one")
p(s())
p(u.TestSuite:new()())
local calls = {}
local s3 = u.TestSuite:new()
s3.setup = function(self) calls[#calls+1] = "setup" end
s3.teardown = function(self) calls[#calls+1] = "teardown" end
s3:add_test(function() calls[#calls+1] = "t1" return true end)
s3:add_test(function() calls[#calls+1] = "t2" return true end)
p(s3())
p(table.concat(calls, ","))
local s4 = u.TestSuite:new()
s4:add_test(function() error("boom", 0) end, "raises")
p(pcall(s4))
package.path = LIBDIR .. "/?.lua;" .. package.path
local r = u.run_tests({"ut_faillib", "ut_passlib", "ut_nosuchlib"})
p(#r, r.ut_faillib, r.ut_passlib, r.ut_nosuchlib)
p(u.testing())
return table.concat(out, "\\n")
'''

FAILLIB = '''local unittest = require "unittest"
local M = {}
if not unittest.testing() then return M end
M.test_suite = unittest.TestSuite:new()
M.test_suite:add_test(unittest.equal(1, 2), "bad")
M.test_suite:add_test(unittest.equal(1, 1), "good")
M.test_suite:add_test(unittest.is_nil(1), "bad too")
return M
'''
PASSLIB = FAILLIB.replace("equal(1, 2)", "equal(2, 2)").replace("is_nil(1)", "is_nil(nil)")


def _suites(tmp_path):
    (tmp_path / "ut_faillib.lua").write_text(FAILLIB)
    (tmp_path / "ut_passlib.lua").write_text(PASSLIB)
    return f'local LIBDIR = "{tmp_path}"\n' + SUITES


def test_suites_count_failures_and_run_tests_reports_failing_libraries(tmp_path):
    body = _suites(tmp_path)
    ours = run_lua(tmp_path, body)
    lines = ours.split("\n")
    assert lines[0] == "nil"
    assert "3 | 7" in lines  # failed, total
    assert "setup,t1,t2,teardown" in lines
    assert "false | boom" in lines
    assert "1 | 2 | nil | nil" in lines  # run_tests: failing libraries only
    assert lines[-1] == "true"
    assert run_lua_nmap(tmp_path, body) == ours


def test_suite_logs_like_nmap(tmp_path):
    body = '''local u = require "unittest"
    local s = u.TestSuite:new()
    s:add_test(u.equal(1,1), "one is one")
    s:add_test(u.equal(1,2), "one is two")
    s:add_test(function() return false, "custom" end, "cust")
    s:add_test(function() return false end, "bare")
    return tostring(s())'''
    for level, expected in [
        (1, ["| Test: one is two...", "| \\_result: Fail (1\n not equal to 2\n)",
             "| Test: cust...", "| \\_result: Fail (custom)", "| Test: bare...",
             "| \\_result: Fail", "|_1 of 4 tests passed"]),
        (2, ["| Test: one is one...", "| \\_result: Pass", "| Test: one is two...",
             "| \\_result: Fail (1\n not equal to 2\n)", "| Test: cust...",
             "| \\_result: Fail (custom)", "| Test: bare...", "| \\_result: Fail",
             "|_1 of 4 tests passed"]),
    ]:
        done = run(tmp_path, {"lua-check": _lua_check_source(textwrap.dedent(body))},
                   phase="prerule", debugging=level)
        assert [r.output for r in done.results] == ["3"]
        messages = [line.split("] ", 1)[1] for line in done.log if line.startswith("NSE: [")]
        assert messages == expected


def test_testing_is_true_with_the_unittest_run_argument(tmp_path):
    body = 'return tostring(require("unittest").testing())'
    assert run_lua(tmp_path, body) == "nil"
    assert run_lua(tmp_path, body, script_args={"unittest.run": "1"}) == "true"
