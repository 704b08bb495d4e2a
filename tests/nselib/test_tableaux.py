"""nselib/tableaux.lua: copies, keys, invert and contains, compared with Nmap's."""
from nse_support import LUA_OUTPUT, run_lua, run_lua_nmap

PRELUDE = r'''
local ta = require "tableaux"
''' + LUA_OUTPUT + r'''local function show(t)
  local r = {}
  for i, v in ipairs(t) do r[#r + 1] = "[" .. tostring(v) .. "]" end
  return #t .. ":" .. table.concat(r)
end
'''

BODY = PRELUDE + r'''
local t = {1, 2, {3, 4}, a = {b = "c"}}
local c = ta.tcopy(t)
p(c[3] ~= t[3], c.a ~= t.a, c[3][2], c.a.b, c[1], #c)
local s = ta.shallow_tcopy(t)
p(s[3] == t[3], s.a == t.a, s[1], #s)
local mt = setmetatable({x = 1}, {__index = {y = 2}})
local cm = ta.tcopy(mt)
p(getmetatable(cm), cm.y, cm.x, ta.shallow_tcopy(mt).y, getmetatable(ta.shallow_tcopy(mt)))
local shared = {1}
local dag = ta.tcopy({a = shared, b = shared})
p(dag.a == dag.b, dag.a[1], dag.a == shared)
p(show(ta.keys({})), #ta.keys({a = 1, b = 2, c = 3}), show(ta.keys({10, 20, 30})))
local ks = ta.keys({x = 1, y = 2}) table.sort(ks) p(show(ks))
local inv = ta.invert({"a", "b", x = "c"})
p(inv.a, inv.b, inv.c)
p(ta.contains({1, 2, 3}, 2)) p(ta.contains({1, 2, 3}, 5)) p(ta.contains({a = 1, b = 2}, 2))
p(ta.contains({a = 1, b = 2}, 2, true)) p(ta.contains({1, 2, x = 3}, 3, true))
p(ta.contains({1, 2, x = 3}, 3)) p(ta.contains({}, nil)) p(select("#", ta.contains({}, 1)))
-- A table with __pairs: copies and invert see what pairs gives, keys and shallow copies the raw
-- contents.
local proxy = setmetatable({}, {__pairs = function()
  return function(_, k) if not k then return 1, "one" end end, nil, nil
end})
p(show(ta.keys(proxy)), ta.contains(proxy, "one"), ta.tcopy(proxy)[1],
  ta.shallow_tcopy(proxy)[1], ta.invert(proxy).one)
return table.concat(out, "\n")
'''


def test_tableaux_matches_nmap(tmp_path):
    ours = run_lua(tmp_path, BODY)
    lines = ours.split("\n")
    assert lines[0] == "true | true | 4 | c | 1 | 3"
    assert "false | 1 | false" in lines  # shared subtables are copied separately
    assert "true | 2" in lines and "false | nil" in lines
    assert lines[-1] == "0: | true | one | nil | 1"
    assert run_lua_nmap(tmp_path, BODY) == ours


def test_copying_a_table_that_contains_itself(tmp_path):
    # Nmap's tcopy overflows the stack here; ours copies the cycle.
    body = PRELUDE + r'''
    local t = {n = 1} t.self = t t.list = {t}
    local c = ta.tcopy(t)
    p(c ~= t, c.self == c, c.list[1] == c, c.n)
    p(pcall(ta.keys, nil))
    return table.concat(out, "\n")'''
    lines = run_lua(tmp_path, body).split("\n")
    assert lines[0] == "true | true | true | 1"
    assert lines[1] == "false | bad argument #1 to 'keys' (table expected, got nil)"
