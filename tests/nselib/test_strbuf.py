"""nselib/strbuf.lua: string buffers and their operators, compared with Nmap's."""
from nse_support import LUA_OUTPUT, run_lua, run_lua_nmap

BODY = r'''
local strbuf = require "strbuf"
''' + LUA_OUTPUT + r'''local function err(ok, e) if ok then return "ok" end return (tostring(e):gsub("^.-:%d+: ", "")) end
local buf = strbuf.new()
local buf2 = strbuf.new("hello")
buf = buf .. "string"
buf = buf .. "data"
p("[" .. tostring(buf) .. "]", "[" .. strbuf.dump(buf) .. "]", "[" .. strbuf.dump(buf, ", ") .. "]",
  "[" .. tostring(buf2) .. "]")
p(strbuf.dump(strbuf.new("a", "b", "c"), "+"))
p(buf == strbuf.new("string", "data"), buf == strbuf.new("stringdata"),
  strbuf.eqbuf(buf, strbuf.new("string", "data")), buf ~= strbuf.new("x"))
local b4 = strbuf.new("x") .. strbuf.new("y", "z") p(strbuf.dump(b4, "/"))
strbuf.clear(b4) p("[" .. strbuf.dump(b4) .. "]", #b4)
p(err(pcall(function() return "x" .. strbuf.new("y") end)))
p(err(pcall(function() return strbuf.new("y") .. 5 end)))
p(err(pcall(function() return strbuf.new("y") .. nil end)))
p(err(pcall(function() return strbuf.new("a") .. true end)))
p(strbuf.tostring(strbuf.new("p", "q")))
p(#strbuf.new("a", "b"), rawlen(strbuf.new("a", "b")), strbuf.new("a", "b")[2])
local b5 = strbuf.new() p(strbuf.concatbuf(b5, "x") == b5, strbuf.dump(b5))
local ks = {} for k in pairs(getmetatable(strbuf.new())) do ks[#ks + 1] = k end
table.sort(ks) p(table.concat(ks, ","))
local ks = {} for k, v in pairs(strbuf.new("a")) do ks[#ks + 1] = k .. "=" .. v end
p(table.concat(ks, ","))
p(strbuf.new("a") == strbuf.new("a", ""), strbuf.new("ab") == strbuf.new("a", "b"))
local b = strbuf.new("a", "b") p(b:dump(","), b:tostring())
local b2 = strbuf.new(1, 2) p(tostring(b2), strbuf.dump(b2))
p(strbuf.new("a") == "a", err(pcall(strbuf.eqbuf, strbuf.new("a"), "a")),
  err(pcall(strbuf.eqbuf, strbuf.new("a"), {"a"})))
local bb = strbuf.new("q") local r = bb .. strbuf.new("r") p(r == bb, #bb, rawequal(r, bb))
return table.concat(out, "\n")
'''


def test_strbuf_matches_nmap(tmp_path):
    ours = run_lua(tmp_path, BODY)
    assert ours.startswith("[string\ndata] | [stringdata] | [string, data] | [hello]\n")
    assert "\nbad #2 operand to strbuf concat operation\n" in ours
    assert run_lua_nmap(tmp_path, BODY) == ours
