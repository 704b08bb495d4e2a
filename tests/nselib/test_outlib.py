"""nselib/outlib.lua: list_sep and sorted_by_key, compared with Nmap's (and the structured
output they are for)."""
from nse_support import LUA_OUTPUT, _lua_check_source, run, run_lua, run_lua_nmap

BODY = r'''
local outlib = require "outlib"
''' + LUA_OUTPUT + r'''local function keys(t)
  local ks = {}
  for k, v in pairs(t) do ks[#ks + 1] = tostring(k) .. "=" .. tostring(v) end
  return table.concat(ks, ",")
end
local l = {"a", "b", "c"} p(outlib.list_sep(l))
p(tostring(l), type(l), getmetatable(l) ~= nil, l[1], #l)
local l2 = {"a", "b"} p(select("#", outlib.list_sep(l2, " + "))) p(tostring(l2))
local e1, e2 = {}, {1, 2} outlib.list_sep(e1) outlib.list_sep(e2) p(tostring(e1), tostring(e2))
local ks = {} for k in pairs(getmetatable(l)) do ks[#ks + 1] = k end table.sort(ks)
p(table.concat(ks, ","))
local l3 = setmetatable({"q"}, {__index = function() return 1 end}) outlib.list_sep(l3)
p(tostring(l3), l3.zz)
local src = {z = 1, y = 2, x = 3, w = 4, v = 5, u = 6}
local s = outlib.sorted_by_key(src)
p(keys(s), s == src, getmetatable(src), s.x, s.nope, #s, rawget(s, "x"))
s.a = 7 p(keys(s), src.a, rawget(s, "a"))
src.b = 8 p(keys(s))
src.z = nil p(keys(s))
p(keys(outlib.sorted_by_key({3, 1, 2})), #outlib.sorted_by_key({3, 1, 2}))
p(keys(outlib.sorted_by_key({})))
p(keys(outlib.sorted_by_key({[10] = 1, [9] = 2, [100] = 3})))
p(keys(outlib.sorted_by_key({["10"] = 1, ["9"] = 2, ["100"] = 3})))
local ks = {} for k in pairs(getmetatable(outlib.sorted_by_key({a = 1}))) do ks[#ks + 1] = k end
p(table.concat(ks, ","))
local ok, e = pcall(function() return keys(outlib.sorted_by_key({[1] = 1, a = 2})) end)
p(ok, (tostring(e):match("attempt to compare")))
return table.concat(out, "\n")
'''


def test_outlib_matches_nmap(tmp_path):
    ours = run_lua(tmp_path, BODY)
    lines = ours.split("\n")
    assert "a, b, c | table | true | a | 3" in lines and "a + b" in lines
    assert "u=6,v=5,w=4,x=3,y=2,z=1 | false | nil | nil | nil | 0 | nil" in lines
    assert "9=2,10=1,100=3" in lines and "10=1,100=3,9=2" in lines
    assert run_lua_nmap(tmp_path, BODY) == ours


def test_structured_output_uses_them(tmp_path):
    body = '''local outlib = require "outlib"
    local list = {"x", "y"}
    outlib.list_sep(list, "; ")
    return {names = list, sorted = outlib.sorted_by_key({b = "2", a = "1"})}'''
    done = run(tmp_path, {"lua-check": _lua_check_source(body)}, phase="prerule")
    (result,) = done.results
    assert "\n  names: x; y" in result.output
    assert "\n  sorted: \n    a: 1\n    b: 2" in result.output
