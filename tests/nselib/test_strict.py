"""nselib/strict.lua: undeclared reads and assignments raise, compared with Nmap's."""
from nse_support import LUA_OUTPUT, run_lua, run_lua_nmap

MODULE = r'''
local pcall, tostring, select, pairs, ipairs, getmetatable, rawset, table =
      pcall, tostring, select, pairs, ipairs, getmetatable, rawset, table
local strict = require "strict"
local base = {}
local env = strict(base)
local _ENV = env
declared_in_main = 1
local results = {}
local function add(ok, err)
  results[#results + 1] = tostring(ok) .. " " .. tostring(err):gsub("^.-:(%d+): ", "line %1: ")
end
add(env == base, getmetatable(env) ~= nil)
add(pcall(function() return undeclared_read end))
add(pcall(function() newglobal = 5 end))
add(pcall(function() declared_in_main = 2 return declared_in_main end))
declared_nil = nil
add(pcall(function() return declared_nil end))
add(pcall(function() declared_nil = 3 return declared_nil end))
add((pcall(rawset, env, "viarawset", 1)), "set")
add(pcall(function() return viarawset end))
local keys = {}
for k in pairs(getmetatable(env)) do keys[#keys + 1] = k end
table.sort(keys)
add("mt", table.concat(keys, ","))
return results
'''

BODY = r'''
package.path = LIBDIR .. "/?.lua;" .. package.path
local strict = require "strict"
''' + LUA_OUTPUT + r'''local function err(ok, e) if ok then return "ok " .. tostring(e) end
  return (tostring(e):gsub("^.-:%d+: ", "")) end
p(table.concat(require("strictmod_check"), "\n"))
local withmt = setmetatable({}, {__index = {inherited = 1}})
p(strict(withmt) == withmt)
p(err(pcall(function() return withmt.inherited end)))
p(err(pcall(function() return withmt.nope end)))
p(err(pcall(strict, nil)))
p(err(pcall(function() local e = strict({}) return e.anything end)))
p(err(pcall(function() local e = strict({}) e.x = 1 return e.x end)))
p(err(pcall(function() local e = strict({}) rawset(e, "y", 1) return e.y end)))
p(err(pcall(function() local e = strict({a = 1}) return e.a end)))
p(err(pcall(function() local e = strict({}) return rawget(e, "zz") end)))
local fmt = setmetatable({}, {__index = function(t, k) if k == "dyn" then return "D" end end})
strict(fmt)
p(err(pcall(function() return fmt.dyn end)), err(pcall(function() return fmt.other end)))
local e = strict({})
p(err(pcall(load("v = 5; return v", "=chunk", "t", e))))
p(err(pcall(load("return function() w = 1 end", "=chunk2", "t", e)())))
p(err(pcall(function() return e.v end)))
p(err(pcall(string.gsub, "x", "x", e)))
return table.concat(out, "\n")
'''


def test_strict_matches_nmap(tmp_path):
    (tmp_path / "strictmod_check.lua").write_text(MODULE)
    body = f'local LIBDIR = "{tmp_path}"\n' + BODY
    ours = run_lua(tmp_path, body)
    lines = ours.split("\n")
    assert lines[:9] == [
        "true true", "false line 14: variable 'undeclared_read' is not declared",
        "false line 15: assign to undeclared variable 'newglobal'",
        "true 2", "true nil", "true 3", "true set", "true 1",
        "mt __declared,__index,__newindex"]
    assert "assign to undeclared variable 'x'" in lines
    assert "variable 'nope' is not declared" in lines
    assert run_lua_nmap(tmp_path, body) == ours
