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
