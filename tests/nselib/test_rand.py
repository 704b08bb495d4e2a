"""nselib/rand.lua: character sets and random strings; the deterministic parts (sets, lengths,
alphabets) compared with Nmap's."""
from nse_support import LUA_OUTPUT, run_lua, run_lua_nmap

PRELUDE = r'''
local rand = require "rand"
''' + LUA_OUTPUT + r'''local function try(f, ...)
  local r = table.pack(pcall(f, ...))
  if not r[1] then return "ERR " .. tostring(r[2]):gsub("^.-:%d+: ", "") end
  return type(r[2]) == "table" and "T" or tostring(r[2])
end
local function show(cs)
  local ks = {}
  for k, v in pairs(cs) do ks[#ks + 1] = tostring(k) .. "=" .. tostring(v) end
  table.sort(ks)
  return #cs .. ":" .. table.concat(ks, ",")
end
local function distinct(f, n)
  local seen, count = {}, 0
  for _ = 1, n do
    local s = f()
    if not seen[s] then seen[s] = true count = count + 1 end
  end
  return count
end
'''

BODY = PRELUDE + r'''
p(show(rand.charset("a", "e")), show(rand.charset(65, 70)))
p(show(rand.charset("0", "3", rand.charset("x", "z"))), show(rand.charset("e", "a")),
  show(rand.charset("a", "a")), try(rand.charset, "ab", "c"))
local cs = rand.charset("a", "c")
local s = rand.random_string(1000, cs) p(#s, s:match("^[abc]+$") ~= nil)
s = rand.random_string(1000, "xyz") p(#s, s:match("^[xyz]+$") ~= nil)
p(#rand.random_string(100), #rand.random_string(0))
s = rand.random_alpha(500) p(#s, s:match("^[a-z]+$") ~= nil)
p(rand.random_string(0, "abc"), rand.random_alpha(0), rand.random_string(-1, "ab"))
p(#rand.random_string(2.5, "ab"), #rand.random_string("3", "ab"))
s = rand.random_string(4, {"ab", "cd"}) p(#s, s:match("^[abcd]+$") ~= nil)
p(distinct(function() return rand.random_string(1, "abcd") end, 2000))
p(distinct(function() return rand.random_string(1) end, 5000) > 200)
p(distinct(function() return rand.random_alpha(12) end, 200))
return table.concat(out, "\n")
'''


def test_rand_matches_nmap(tmp_path):
    ours = run_lua(tmp_path, BODY)
    assert ours.split("\n") == [
        "5:1=a,2=b,3=c,4=d,5=e | 6:1=A,2=B,3=C,4=D,5=E,6=F",
        "7:1=x,2=y,3=z,4=0,5=1,6=2,7=3 | 0: | 1:1=a | T",
        "1000 | true", "1000 | true", "100 | 0", "500 | true", " |  | ", "2 | 3", "8 | true",
        "4", "true", "200"]
    assert run_lua_nmap(tmp_path, BODY) == ours


def test_bad_arguments(tmp_path):
    body = PRELUDE + r'''
    p(try(rand.charset, nil, "c"), try(rand.random_string, 5, ""), try(rand.random_string, -1),
      try(rand.random_string, nil, "ab"))
    return table.concat(out, "\n")'''
    assert run_lua(tmp_path, body).split(" | ") == [
        "ERR bad argument #1 to 'charset' (character or byte value expected)",
        "ERR bad argument #2 to 'random_string' (empty charset)",
        "ERR bad argument #1 to 'random_string' (negative length)",
        "ERR bad argument #1 to 'random_string' (number expected)"]
