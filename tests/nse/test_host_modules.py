"""The modules Nmap builds in C, as scripts from an Nmap data directory need them (nse-spec
§10): lfs and the globals compared with the installed nmap; LPeg is Debian's C library in
our Lua; an Nmap stdnse gets the engine's part; a missing module (libssh2) skips quietly."""
from __future__ import annotations

from conftest import run_nsecluster
from nse_support import LUA_OUTPUT, run_lua, run_lua_nmap
from worker.nse.profile import NMAP7

LFS_CHECK = LUA_OUTPUT + r'''
local lfs = require "lfs"
local root = ROOT
local function r(...) local t = table.pack(...) for i = 1, t.n do t[i] = tostring(t[i]) end
  return t.n .. ":" .. table.concat(t, "|", 1, t.n) end
p("mkdir", r(lfs.mkdir(root .. "/d")))
p("mkdir again", r(lfs.mkdir(root .. "/d")))
p("mkdir deep", r(lfs.mkdir(root .. "/no/such")))
local f = io.open(root .. "/d/a", "w") f:write("x") f:close()
local names = {}
for name in lfs.dir(root .. "/d") do names[#names + 1] = name end
table.sort(names)
p("dir", table.concat(names, ","))
local step, dir = lfs.dir(root .. "/d")
p("dir types", type(step), step(dir) ~= nil)
dir:close()
p("next after close", (pcall(step, dir)))
p("dir missing", pcall(lfs.dir, root .. "/nope"))
p("symlink", r(lfs.link(root .. "/d/a", root .. "/s", true)))
p("symlink again", r(lfs.link(root .. "/d/a", root .. "/s", true)))
p("hard link", r(lfs.link(root .. "/d/a", root .. "/h")))
p("rmdir full", r(lfs.rmdir(root .. "/d")))
os.remove(root .. "/d/a")
p("rmdir", r(lfs.rmdir(root .. "/d")))
p("rmdir missing", r(lfs.rmdir(root .. "/d")))
p("separator", lfs.get_path_separator())
local keys = {}
for k in pairs(lfs) do keys[#keys + 1] = k end
table.sort(keys)
p("fields", table.concat(keys, ","))
return done()
'''

GLOBALS_CHECK = LUA_OUTPUT + r'''
for _, name in ipairs{"openssl", "zlib", "lpeg", "lfs"} do
  p(name, type(rawget(_G, name)), rawget(_G, name) == require(name))
end
p("stdnse global", type(rawget(_G, "stdnse")))
local lpeg = require "lpeg"
p("lpeg", lpeg.version(), lpeg.match(lpeg.C(lpeg.R("09")^1) * ".", "2024."))
local digits = lpeg.Cs((lpeg.R("09") / function(d) return "<" .. d .. ">" end + 1)^0)
p("lpeg substitution", digits:match("a1b22"))
return done()
'''


def test_lfs_behaves_as_nmaps(tmp_path):
    outputs = []
    for tool in ("nmap", "ours"):
        root = tmp_path / tool
        root.mkdir()
        body = f"local ROOT = {str(root)!r}\n" + LFS_CHECK
        run = run_lua_nmap if tool == "nmap" else (
            lambda path, text: run_lua(path, text, NMAP7))
        outputs.append(run(root, body).replace(str(root), "ROOT"))
    assert outputs[1] == outputs[0]
    assert "mkdir again | 2:nil|File exists" in outputs[1]
    assert "symlink again | 3:nil|File exists|17" in outputs[1]


def test_c_modules_are_globals_and_lpeg_is_the_real_library(tmp_path):
    theirs = run_lua_nmap(tmp_path, GLOBALS_CHECK)
    ours = run_lua(tmp_path, GLOBALS_CHECK, NMAP7)
    assert ours == theirs
    assert "lpeg substitution | a<1>b<2><2>" in ours


def test_an_nmap_stdnse_gets_the_engines_part_and_missing_modules_skip_quietly(tmp_path):
    (tmp_path / "engine-part.nse").write_text('''
local stdnse = require "stdnse"
description = "x"
categories = {"safe"}
prerule = function() return true end
action = function()
  local got = {}
  local co = stdnse.new_thread(function(x) stdnse.sleep(0.01) got[1] = x * 2 end, 21)
  for _ = 1, 100 do
    if coroutine.status(co) == "dead" then break end
    stdnse.sleep(0.01)
  end
  return ("worker gave %s; sleep %s; base %s"):format(tostring(got[1]), type(stdnse.sleep),
    type(stdnse.base()))
end
''')
    (tmp_path / "needs-libssh2.nse").write_text('''
local stdnse = require "stdnse"
local libssh2 = stdnse.silent_require "libssh2"
description = "x"
categories = {"safe"}
prerule = function() return true end
action = function() return "should not run" end
''')
    done = run_nsecluster("scan", "--datadir", "/usr/share/nmap", "-n", "-sn", "-Pn",
                          "--script", f"{tmp_path}/engine-part.nse,{tmp_path}/needs-libssh2.nse",
                          "127.0.0.1")
    assert done.returncode == 0, done.stderr
    assert "|_engine-part: worker gave 42; sleep function; base thread" in done.stdout
    assert "should not run" not in done.stdout and "needs-libssh2" not in done.stdout
    assert "Traceback" not in done.stderr


def test_the_lpeg_benchmark_runs_both_tools(capsys):
    from bench import lpeg

    assert lpeg.main(["--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "ratio nsecluster/nmap:" in out and "nmap: median" in out
