"""nselib/stringaux.lua: strjoin, strsplit, filename_escape and ipattern, compared with
Nmap's."""
from nse_support import LUA_OUTPUT, run_lua, run_lua_nmap

PRELUDE = r'''
local sa = require "stringaux"
''' + LUA_OUTPUT + r'''local function show(t)
  local r = {}
  for i, v in ipairs(t) do r[#r + 1] = "[" .. tostring(v) .. "]" end
  return #t .. ":" .. table.concat(r)
end
local function try(f, ...)
  local r = table.pack(pcall(f, ...))
  if not r[1] then return "ERR " .. tostring(r[2]):gsub("^.-:%d+: ", "") end
  if type(r[2]) == "table" then return show(r[2]) end
  return tostring(r[2])
end
'''

BODY = PRELUDE + r'''
p(sa.strjoin(", ", {"a", "b", "c"}), sa.strjoin("", {}), sa.strjoin(", ", {"a", 1, 2.5}))
p(try(sa.strjoin, nil, {"a", "b"}), try(sa.strjoin, {"a"}, ","), try(sa.strjoin, 5, {"a"}))
for _, c in ipairs{{",%s*", "Anna, Bob, Charlie"}, {",", ""}, {",", ","}, {",", "a,,b,"},
                   {",", ",a"}, {"%s+", "  a b  "}, {"(,)", "a,b"}, {"a", "aaa"},
                   {"[", "a[b"}, {"%.", "1.2.3"}, {"ab", "xabyabz"}, {"%d+", "a1b22c333"}} do
  p(c[1], c[2], try(sa.strsplit, c[1], c[2]))
end
for _, s in ipairs{"filename.ext", "input/output", ".", "..", "...", "a b", "\195\164",
                   "A-Z_09", "", "\0\255", "%", "../x", "~$#"} do
  p(s, sa.filename_escape(s))
end
for _, s in ipairs{"abc", "a%d", "[ab]", "%a+x", "Hello World", "a-b", "%%", "1.2", "%[x",
                   "[%a]", "[]a]", "[^a]b", "%f[%w]a", "%%a", "[a%]b]c", "a%", "[a", "%bxy",
                   "\195\169", "[[a]", "Zz09", ""} do
  p(s, sa.ipattern(s))
end
p(("HELLO"):match(sa.ipattern("hello")), ("x[Ab]"):match(sa.ipattern("[ab]")))
return done()
'''


def test_stringaux_matches_nmap(tmp_path):
    ours = run_lua(tmp_path, BODY)
    lines = ours.split("\n")
    assert "a, b, c |  | a, 1, 2.5" in lines
    assert ",%s* | Anna, Bob, Charlie | 3:[Anna][Bob][Charlie]" in lines
    assert ", | a,,b, | 4:[a][][b][]" in lines
    assert "input/output | input%2foutput" in lines and ".. | %2e%2e" in lines
    assert "%a+x | %a+[xX]" in lines and "[a%]b]c | [a%]b][cC]" in lines
    assert run_lua_nmap(tmp_path, BODY) == ours


def test_strsplit_on_empty_matches_ends(tmp_path):
    # Nmap's loops forever on a pattern that matches the empty string; ours skips such matches.
    body = PRELUDE + r'''
    p(try(sa.strsplit, "", "abc")) p(try(sa.strsplit, "x*", "axxb")) p(try(sa.strsplit, "x*", ""))
    p(try(sa.strsplit, ",", nil)) p(try(sa.ipattern, nil)) p(try(sa.filename_escape, nil))
    return done()'''
    assert run_lua(tmp_path, body).split("\n") == [
        "1:[abc]", "2:[a][b]", "1:[]",
        "ERR bad argument #2 to 'strsplit' (string expected, got nil)",
        "ERR bad argument #1 to 'ipattern' (string expected, got nil)",
        "ERR bad argument #1 to 'filename_escape' (string expected, got nil)"]
