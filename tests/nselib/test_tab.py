"""nselib/tab.lua: building and dumping text tables, compared with Nmap's."""
from nse_support import LUA_OUTPUT, run_lua, run_lua_nmap

PRELUDE = r'''
local tab = require "tab"
''' + LUA_OUTPUT + r'''local function err(ok, e) if ok then return "ok" end return (tostring(e):gsub("^.-:%d+: ", "")) end
local function skeys(t)
  local ks = {}
  for k, v in pairs(t) do
    ks[#ks + 1] = tostring(k) .. "=" .. (type(v) == "table" and "T" or tostring(v))
  end
  table.sort(ks)
  return table.concat(ks, ",")
end
'''

BODY = PRELUDE + r'''
local t = tab.new()
tab.add(t, 1, "A1") tab.add(t, 2, "A2") tab.nextrow(t)
tab.add(t, 1, "BBBBBBBBB1") tab.add(t, 2, "BBB2") tab.nextrow(t)
tab.addrow(t, "C1", "C2")
p("[" .. tab.dump(t) .. "]", "[" .. tostring(t) .. "]", skeys(t))
local t2 = tab.new() tab.add(t2, 3, "x") tab.nextrow(t2) tab.add(t2, 1, "yy") tab.add(t2, 2, "z")
p("[" .. tab.dump(t2) .. "]")
local t3 = tab.new() p("[" .. tab.dump(t3) .. "]", skeys(t3))
tab.addrow(t3, "a", 1, true) p("[" .. tab.dump(t3) .. "]")
p(err(pcall(tab.add, t3, 1, 5)), err(pcall(tab.add, nil, 1, "x")))
local t4 = tab.new() tab.addrow(t4, "a", "b") tab.addrow(t4, "ccc") tab.addrow(t4, "", "dddd", "e")
p("[" .. tab.dump(t4) .. "]")
p(tab.add(tab.new(), 1, "x"), tab.nextrow(tab.new()), tab.addrow(tab.new(), "x"))
local t5 = tab.new() tab.addrow(t5, "x") tab.nextrow(t5) tab.nextrow(t5) tab.addrow(t5, "y")
p("[" .. tab.dump(t5) .. "]", t5.current_row)
local t6 = tab.new() tab.addrow(t6, "a", nil, "c") tab.addrow(t6, "dd")
p("[" .. tab.dump(t6) .. "]", skeys(t6), skeys(t6[1]))
local t7 = tab.new() tab.nextrow(t7) p(skeys(t7))
local t8 = tab.new() tab.add(t8, 1, "a") tab.add(t8, 1, "bb") p("[" .. tab.dump(t8) .. "]")
local t9 = tab.new() tab.addrow(t9) tab.addrow(t9, "x") p("[" .. tab.dump(t9) .. "]", t9.current_row)
local t10 = tab.new() tab.add(t10, 1, "a") tab.add(t10, 2, "") tab.nextrow(t10)
tab.add(t10, 1, "bbb") p("[" .. tab.dump(t10) .. "]")
return table.concat(out, "\n")
'''


def test_tab_matches_nmap(tmp_path):
    ours = run_lua(tmp_path, BODY)
    assert ours.startswith("[A1          A2\nBBBBBBBBB1  BBB2\nC1          C2\n]")
    assert "[a    b\nccc\n     dddd  e\n]" in ours
    assert run_lua_nmap(tmp_path, BODY) == ours


def test_columns_no_row_uses_are_empty(tmp_path):
    # Nmap's dump fails on a column that no row fills; ours treats it as empty.
    body = PRELUDE + r'''
    local t = tab.new() tab.add(t, 2, "a") tab.nextrow(t) tab.add(t, 4, "b")
    p("[" .. tab.dump(t) .. "]")
    return table.concat(out, "\n")'''
    assert run_lua(tmp_path, body) == "[  a\n       b\n]"
