"""Engine behaviour Nmap's own scripts and libraries (Debian's /usr/share/nmap) rely on, each
found by the comparison suite and checked here on its own: the same Lua check runs in our
engine, with Nmap's nselib first on the module path, and under the installed nmap."""
from __future__ import annotations

import re
from pathlib import Path

from nse_support import NSELIB, run_lua, run_lua_nmap

from worker.nse.engine import Engine, EngineOptions
from worker.nse.profile import NMAP7
from worker.nsock.loop import EventLoop

NMAP_NSELIB = Path("/usr/share/nmap/nselib")


def run_with_nmap_nselib(tmp_path: Path, body: str, name: str = "lua-check") -> str:
    """``body`` as a prerule action in our engine under the Nmap 7 profile, requiring modules
    from Nmap's nselib as a --datadir scan does."""
    assert NMAP_NSELIB.is_dir(), "Debian's nmap-common is required (.ci/setup installs it)"
    log: list[str] = []
    engine = Engine(EventLoop(), log=log.append, nselib_dirs=[NMAP_NSELIB, NSELIB])
    engine.configure(EngineOptions(debugging=1))
    try:
        return run_lua(tmp_path, body, profile=NMAP7, name=name, engine=engine)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n" + "\n".join(log)) from None


# ipairs (a C function) over an object whose class table falls back to _G: Nmap's strbuf
# objects are such (http-robots.txt iterates one). Lua code reading the same name still fails.
STRICT_FROM_C = r'''
local class = setmetatable({}, {__index = _G})
local object = setmetatable({}, {__index = class})
local seen = 0
for _ in ipairs(object) do seen = seen + 1 end
local ok, err = pcall(function() return object.surely_not_declared end)
return ("ipairs saw %d; Lua read ok=%s %s"):format(seen, tostring(ok),
  tostring(err):match("variable '[^']+' is not declared") or tostring(err))
'''


def test_strict_globals_let_c_functions_read_nil_as_nmap(tmp_path):
    (tmp_path / "ours").mkdir()
    ours = run_with_nmap_nselib(tmp_path / "ours", STRICT_FROM_C)
    theirs = run_lua_nmap(tmp_path, STRICT_FROM_C)
    assert ours == theirs == ("ipairs saw 0; Lua read ok=false "
                              "variable 'surely_not_declared' is not declared")


# Nmap's stdnse defines stubs for getid, getinfo and gethostport that the engine replaces; a
# library calling stdnse.getid() (ls.config builds "<script>.<arg>" names from it) needs the
# engine's. The check's script id is its file name.
STDNSE_STUBS = r'''
local stdnse = require "stdnse"
local host, port = stdnse.gethostport()
return ("getid=%s getinfo=%s host=%s"):format(tostring(stdnse.getid()),
  tostring(stdnse.getinfo()), tostring(host))
'''


def test_nmap_stdnse_stubs_are_replaced_by_the_engine(tmp_path):
    (tmp_path / "ours").mkdir()
    ours = run_with_nmap_nselib(tmp_path / "ours", STDNSE_STUBS, name="stub-check")
    theirs = run_lua_nmap(tmp_path, STDNSE_STUBS, name="stub-check")
    pattern = r"getid=stub-check getinfo=stub-check M:[0-9a-f]+ host=nil"
    assert re.fullmatch(pattern, ours), ours
    assert re.fullmatch(pattern, theirs), theirs


# Debian's nmap runs Lua 5.3: string.unpack's "z" at the very end of the data, without its
# zero, reads to the end (5.4 raises "unfinished string"); mysql.lua reads a server's error
# message so (mysql-empty-password on MariaDB). Everything else stays as it was, errors too
# (but for a tail call of string.unpack, whose error has no position: ours is a Lua function).
UNPACK_Z = r'''
local out = {}
local function try(...)
  local r = table.pack(pcall(string.unpack, ...))
  for i = 1, r.n do r[i] = tostring(r[i]) end
  out[#out + 1] = table.concat(r, ",")
end
try("z", "abc")
try("Bz", "\1abc")
try("z", "ab\0cd")
try("z", "xabc", -3)
try("zB", "abc")
try("zz", "ab\0cd")
try("s1", "\5ab")
try("B", "")
local ok, err = pcall(function() local v = string.unpack("zI4", "ab"); return v end)
out[#out + 1] = tostring(ok) .. "," .. tostring(err):gsub("^.-lua%-check%.nse:", "")
local ok2, err2 = pcall(function() local v = string.unpack("Bz", "") return v end)
out[#out + 1] = tostring(ok2) .. "," .. tostring(err2):gsub("^.-lua%-check%.nse:", "")
return table.concat(out, "\n")
'''


def test_string_unpack_reads_a_final_z_string_as_lua_53(tmp_path):
    (tmp_path / "ours").mkdir()
    ours = run_with_nmap_nselib(tmp_path / "ours", UNPACK_Z)
    theirs = run_lua_nmap(tmp_path, UNPACK_Z)
    assert ours == theirs
    assert ours.split("\n")[:4] == ["true,abc,5", "true,1,abc,6", "true,ab,4", "true,abc,6"]
