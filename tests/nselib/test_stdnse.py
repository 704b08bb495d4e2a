"""nselib/stdnse.lua beyond the engine-coupled part tests/nse covers: conversions, format_output,
timeouts, the registry helpers, module/seeall, pretty_printer, make_buffer and logging.

Each check runs the same Lua in our engine (both API profiles) and under the installed nmap
with Nmap's own stdnse, and the answers must be equal; a few plain expectations pin the values
down as well. Error positions ("<file>:<line>: ") are left out of the comparison."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import textwrap
from pathlib import Path

import pytest
from nse_support import _lua_check_source, run, run_lua, run_lua_nmap

from worker.nse.profile import NMAP7, SEED

PROFILES = pytest.mark.parametrize("profile", [SEED, NMAP7], ids=["seed", "nmap7"])

# Lua helpers for the checks: P(label, f, ...) records "label -> <pcall results>" with strings
# quoted and every byte outside printable ASCII written \xHH, so outputs compare as text.
PRELUDE = r"""
local stdnse = require "stdnse"
local out = {}
local function show(v)
  if type(v) == "string" then
    return '"' .. v:gsub('[^\32-\126]', function(c) return ("\\x%02x"):format(c:byte()) end)
               :gsub('"', '\\"') .. '"'
  elseif type(v) == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. show(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return tostring(v)
end
local function P(label, f, ...)
  local r = table.pack(pcall(f, ...))
  for i = 1, r.n do r[i] = show(r[i]) end
  out[#out + 1] = label .. " -> " .. table.concat(r, " ", 1, r.n)
end
"""
EPILOGUE = "\nreturn table.concat(out, '\\n')\n"

POSITION = re.compile(r'(?:\.\.\.|/)[^\s"]*?\.(?:lua|nse):\d+: ')  # Lua may shorten paths


def normalized(text: str) -> str:
    return POSITION.sub("<pos>", text)


def lines_of(text: str) -> list[str]:
    return normalized(text).split("\n")


def compare(tmp_path: Path, body: str, profiles=(SEED, NMAP7)) -> list[str]:
    """Run PRELUDE + body under nmap and in our engine (each profile); all must agree.
    Returns nmap's lines."""
    source = PRELUDE + body + EPILOGUE
    expected = lines_of(run_lua_nmap(tmp_path, source))
    for profile in profiles:
        ours = lines_of(run_lua(tmp_path / profile.name, source, profile))
        assert ours == expected, f"{profile.name} differs from nmap"
    return expected


@pytest.fixture(autouse=True)
def _profile_dirs(tmp_path):
    for profile in (SEED, NMAP7):
        (tmp_path / profile.name).mkdir()


# -- conversions -------------------------------------------------------------------------------

CONVERSIONS = r"""
for _, v in ipairs({"abc", "", "\0\255", "12", 0, 123456, -1, 3.0, 1.5, true, {}}) do
  P("tohex " .. show(v), stdnse.tohex, v)
end
P("tohex sep", stdnse.tohex, "abcde", {separator = ":", group = 4})
P("tohex num sep", stdnse.tohex, 123456, {separator = ":", group = 2})
P("tohex group0", stdnse.tohex, "abcde", {separator = ":", group = 0})
P("tohex group0 nosep", stdnse.tohex, "abcde", {group = 0})
P("tohex group0 empty", stdnse.tohex, "", {separator = ":", group = 0})
P("tohex group x", stdnse.tohex, "abcde", {separator = ":", group = "x"})
P("tohex group str", stdnse.tohex, "abcde", {separator = ":", group = "2"})
P("tohex group bool", stdnse.tohex, "a", {separator = ":", group = true})
P("tohex sep table one group", stdnse.tohex, "a", {separator = {}})
P("tohex sep table", stdnse.tohex, "ab", {separator = {}})
P("tohex sep bool", stdnse.tohex, "abc", {separator = true})
P("tohex sep num", stdnse.tohex, "abc", {separator = 5})
for _, v in ipairs({"616263", "61 62:63", " 61\t62\n63 ", "AbCd", "6", "616", "zz", "", "6G",
                    "0x61", "6 1", "  ", "61\r\n62", 616263, nil}) do
  P("fromhex " .. show(v), stdnse.fromhex, v)
end
for _, v in ipairs({10, 0, 255, 256, -1, 2.0, "5", 1.5, "x"}) do
  P("tobinary " .. show(v), stdnse.tobinary, v)
  P("tooctal " .. show(v), stdnse.tooctal, v)
end
P("format_mac", stdnse.format_mac, "\0\1\2\3\4\255")
P("format_mac short", stdnse.format_mac, "\0\1")
P("format_mac nil", stdnse.format_mac, nil)
for _, v in ipairs({"x", "", 5}) do P("string_or_blank " .. show(v), stdnse.string_or_blank, v) end
P("string_or_blank nil", stdnse.string_or_blank, nil)
P("string_or_blank default", stdnse.string_or_blank, "", "def")
for _, v in ipairs({"10", "10s", "10ms", "1.5m", "2h", "1d", "1H", "x", " 5", "5 s", "-5", "",
                    ".5", "5.", "1e2", "5us", 5, 2.5}) do
  P("parse_timespec " .. show(v), stdnse.parse_timespec, v)
end
P("parse_timespec nil", stdnse.parse_timespec, nil)
for _, h in ipairs({{ip = "1.2.3.4"}, {ip = "1.2.3.4", name = "n.example"},
                    {ip = "1.2.3.4", name = "", targetname = "t.example"},
                    {ip = "1.2.3.4", name = "n.example", targetname = "t.example"},
                    {ip = "1.2.3.4", name = ""}, {}, {ip = "1.2.3.4", targetname = ""}}) do
  P("get_hostname " .. show(h), stdnse.get_hostname, h)
end
P("get_hostname string", stdnse.get_hostname, "1.2.3.4")
P("get_hostname nil", stdnse.get_hostname, nil)
"""


def test_conversions_match_nmap(tmp_path):
    expected = compare(tmp_path, CONVERSIONS)
    assert 'tohex "abc" -> true "616263"' in expected
    assert "tohex 123456 -> true \"1e240\"" in expected
    assert 'fromhex "61 62:63" -> true nil "Invalid hexadecimal digits at position 6"' \
        in expected
    assert 'fromhex " 61\\x0962\\x0a63 " -> true "abc" 3' in expected
    assert 'tobinary 255 -> true "11111111" 2' in expected
    assert 'parse_timespec "1.5m" -> true 90.0' in expected
    assert 'parse_timespec "1d" -> true nil "Can\'t parse time specification \\"1d\\" ' \
           '(bad unit \\"d\\")"' in expected
    assert 'format_mac -> true "0001020304ff"' in expected  # 7.93 writes no colons
    assert 'string_or_blank nil -> true "<blank>"' in expected


# -- format_output -----------------------------------------------------------------------------

FORMAT_OUTPUT = r"""
local cases = {
  {true, {"a", "b"}}, {false, {"a", "b"}}, {false, "err"}, {true, "str"}, {true, {}},
  {true, ""}, {true, {k = "v"}}, {true, {[2] = "x"}},
  {true, {"a", {"b", "c", name = "N"}, "d"}},
  {true, {"a", {"b", {"x", name = "inner"}, name = "N"}, "d"}},
  {true, {"a", {"b"}, "d"}}, {true, {name = "top", "a"}}, {true, {"a", {name = "Empty"}}},
  {true, {"a", {warning = "W", "b"}}}, {true, {"a", {"b", name = "N", warning = "W"}}},
  {true, {"a", 5, true}}, {true, {"l1\nl2", "b"}}, {true, {"a", {"b", {"c", {"d"}}}}},
  {nil, {"a"}}, {true, {warning = "TW", "a"}}, {true, {"a", {"b", "c"}, name = "T", warning = "TW"}},
  {true, {{"only", name = "n"}}}, {true, {{"only"}}}, {true, {"a", {{}, name = "E"}}},
  {true, {"a", {"", name = "E"}}}, {true, {""}}, {true, {"a", {"b", warning = "W", name = 5}}},
  {true, {"a", {"b", name = ""}}}, {true, {"a", {"b\nc", name = "N\nM"}}},
  {true, {"a", nil, "c"}}, {true, {"a", {"b", "c", [4] = "e"}}},
}
for i, c in ipairs(cases) do P("case " .. i, stdnse.format_output, c[1], c[2]) end
for _, s in ipairs({"x\r\ny", "a\n\nb", "\n", "\na", "a\rb", "a\tb  ", "a\rb\rc", "ab\r", "\rb",
                    "a\n\n", "a\n\n\n", "\n\n", "a\r\n", "a\n\rb", "\r", "x\n"}) do
  P("lines " .. show(s), stdnse.format_output, true, {s})
end
local d = {"a", {"b", {"c", name = "C"}, name = "B"}, "d", name = "TOP"}
for _, indent in ipairs({"", " ", "  ", "xyz"}) do
  P("indent " .. show(indent), stdnse.format_output, true, d, indent)
  P("indent error " .. show(indent), stdnse.format_output, false, d, indent)
end
P("indent nested", stdnse.format_output, true, {"a", {"b", {"c"}}}, "12")
for i, d in ipairs({{{}}, {5}, {true, false}, {{name = "n"}}, {{}, "a"}, {"a", {{}, {}}},
                    {"a", {{}, {}, name = "N"}}}) do
  P("nothing printable " .. i, stdnse.format_output, true, d)
  P("nothing printable, indent " .. i, stdnse.format_output, true, d, "")
end
P("indent number", stdnse.format_output, true, {"a"}, 2)
P("no data", stdnse.format_output, true, nil)
"""


def test_format_output_matches_nmap(tmp_path):
    expected = compare(tmp_path, FORMAT_OUTPUT)
    assert 'case 1 -> true "\\x0a  a\\x0a  b\\x0a"' in expected
    assert 'case 2 -> true "\\x0a  ERROR: a\\x0a  ERROR: b\\x0a"' in expected
    assert "case 5 -> true nil" in expected
    assert "nothing printable 1 -> true nil" in expected
    assert 'nothing printable, indent 1 -> true ""' in expected
    assert 'no data -> false "<pos>No data was passed to format_output()"' in expected


# -- timeouts and clocks -----------------------------------------------------------------------

TIMEOUTS = r"""
for _, mm in ipairs({{nil, nil}, {20000, 5000}, {8000, 4000}, {10000, 1000}, {1000, 8000},
                     {8000, nil}, {nil, 500}, {12345, 1}}) do
  local row = {}
  for _, t in ipairs({0, 0.1, 0.123456, 0.4, 0.5, 0.7, 1, 1.3, 1.5, 2, 2.2, 3, 3.5, 4, 4.5, 7,
                      10, 20}) do
    row[#row + 1] = string.format("%.17g", stdnse.get_timeout({times = {timeout = t}}, mm[1], mm[2]))
    row[#row] = row[#row] .. math.type(stdnse.get_timeout({times = {timeout = t}}, mm[1], mm[2]))
  end
  out[#out + 1] = tostring(mm[1]) .. "/" .. tostring(mm[2]) .. ": " .. table.concat(row, " ")
end
P("no times", stdnse.get_timeout, {}, 20000, 3)
P("times without timeout", stdnse.get_timeout, {times = {}})
P("false timeout", stdnse.get_timeout, {times = {timeout = false}}, 20000, 3)
P("no host", stdnse.get_timeout, nil)
P("string host", stdnse.get_timeout, "127.0.0.1")
local ms, us = stdnse.clock_ms(), stdnse.clock_us()
out[#out + 1] = "clock " .. math.type(ms) .. " " .. math.type(us) .. " "
  .. tostring(math.abs(ms - nmap.clock() * 1000) < 1000) .. " "
  .. tostring(math.abs(us / 1000 - ms) < 1000)
"""


def test_get_timeout_and_clocks_match_nmap(tmp_path):
    expected = compare(tmp_path, TIMEOUTS)
    assert "nil/nil: 1000integer 1000integer 1000integer 1000integer 1000float 1400float" \
        in expected[0]
    assert "clock float float true true" in expected


# -- registry ----------------------------------------------------------------------------------

REGISTRY = r"""
P("get missing", stdnse.registry_get, {"t1"})
P("get deep missing", stdnse.registry_get, {"t1", "a"})
P("add", stdnse.registry_add_array, {"t1", "a"}, "v1")
P("add again", stdnse.registry_add_array, {"t1", "a"}, "v1")
P("add again allowed", stdnse.registry_add_array, {"t1", "a"}, "v1", true)
P("add v2", stdnse.registry_add_array, {"t1", "a"}, "v2")
P("get array", stdnse.registry_get, {"t1", "a"})
P("table k=v", stdnse.registry_add_table, {"t1", "b"}, "k", "v")
P("table k=w", stdnse.registry_add_table, {"t1", "b"}, "k", "w")
P("table k=w again", stdnse.registry_add_table, {"t1", "b"}, "k", "w", true)
P("table k2", stdnse.registry_add_table, {"t1", "b"}, "k2", {1})
P("table nil key, known value", stdnse.registry_add_table, {"t1", "b"}, nil, "w")
P("get table", stdnse.registry_get, {"t1", "b"})
for _, c in ipairs({{{"t1", "b"}, "k", "w"}, {{"t1", "b"}, "k"}, {{"t1", "b"}, "zz", "w"},
                    {{"t1", "a"}, 1, "v1"}, {{"t1", "a"}, nil, "v2"}, {{"t1", "a"}, nil, "v9"},
                    {{"t1", "zz"}, "k", "w"}, {{"t1", "b"}, "k", "v"}, {{"t1", "b"}}}) do
  P("exists " .. show(c[1]) .. " " .. show(c[2]) .. " " .. show(c[3]), stdnse.registry_exists,
    c[1], c[2], c[3])
end
P("get through a string", stdnse.registry_get, {"t1", "b", "k", "x"})
P("add under a string", stdnse.registry_add_table, {"t1", "b", "k"}, "x", 1)
P("add nil", stdnse.registry_add_array, {"t1", "n"}, nil)
P("numeric key", stdnse.registry_add_array, {"t1", 5}, "x")
P("tables are distinct", stdnse.registry_add_array, {"t1", "d"}, {1})
P("tables are distinct 2", stdnse.registry_add_array, {"t1", "d"}, {1})
P("whole", stdnse.registry_get, {"t1"})
P("root", function() return stdnse.registry_get({}) == nmap.registry end)
"""


def test_registry_helpers_match_nmap(tmp_path):
    expected = compare(tmp_path, REGISTRY)
    assert 'get array -> true {1="v1",2="v2"}' in expected
    assert 'get table -> true {k="w",k2={1=1}}' in expected


# -- modules, strictness, pretty_printer -------------------------------------------------------

MODULES = r"""
local function keys(t)
  local ks = {}
  for k, v in pairs(t) do
    ks[#ks + 1] = tostring(k) .. "=" .. (v == t and "self" or type(v) == "table" and "tbl" or tostring(v))
  end
  table.sort(ks)
  return table.concat(ks, ",")
end
local m = stdnse.module("zz.yy.xx")
out[#out + 1] = keys(m) .. " mt=" .. tostring(getmetatable(m)) .. " loaded="
  .. tostring(package.loaded["zz.yy.xx"] == m) .. " fresh=" .. tostring(stdnse.module("zz.yy.xx") ~= m)
local m3 = stdnse.module("qq", stdnse.seeall)
out[#out + 1] = keys(m3) .. " " .. tostring(getmetatable(m3).__index == _G) .. " "
  .. tostring(m3.string == string)
local called = {}
local m4 = stdnse.module("rr", function(e) called[#called + 1] = e end,
                         function() called[#called + 1] = "2" end)
out[#out + 1] = tostring(called[1] == m4) .. tostring(called[2])
P("module nil", stdnse.module, nil)
local t = {}
P("seeall", stdnse.seeall, t)
out[#out + 1] = "seeall index " .. tostring(getmetatable(t).__index == _G)
P("undeclared stdnse field", function() return stdnse.no_such_function end)
P("undeclared stdnse field in a test", function() return stdnse.format_timestamp ~= nil end)
local names = {}
for _, name in ipairs({"base", "clock_ms", "clock_us", "debug", "debug1", "debug2", "debug3",
                       "debug4", "debug5", "format_mac", "format_output", "fromhex",
                       "get_hostname", "get_script_args", "get_timeout", "gethostport", "getid",
                       "getinfo", "gettid", "isworker", "make_buffer", "module", "new_thread",
                       "output_table", "parse_timespec", "pretty_printer", "print_debug",
                       "print_verbose", "registry_add_array", "registry_add_table",
                       "registry_exists", "registry_get", "seeall", "silent_require", "sleep",
                       "string_or_blank", "tobinary", "tohex", "tooctal", "verbose",
                       "verbose1", "verbose2", "verbose3", "verbose4", "verbose5"}) do
  names[#names + 1] = name .. ":" .. type(rawget(stdnse, name))
end
out[#out + 1] = table.concat(names, " ")
local count = 0
for k in pairs(stdnse) do count = count + 1 end
out[#out + 1] = "functions " .. count
local function pp(label, o)
  local pieces = {}
  local ok, err = pcall(stdnse.pretty_printer, o, function(s) pieces[#pieces + 1] = s end)
  out[#out + 1] = "pp " .. label .. " " .. tostring(ok) .. " " .. show(table.concat(pieces, "|"))
end
pp("number", 5) pp("string", "a\nb\"c\r") pp("nil", nil) pp("bool", true) pp("float", 1.5)
pp("array", {1, 2, "x"}) pp("map", {a = 1}) pp("nested", {a = {b = {c = 1}}})
pp("mixed", {1, {2, 3}}) pp("empty", {}) pp("bool key", {[true] = 1}) pp("float key", {[1.5] = 1})
pp("tostring ignored", setmetatable({}, {__tostring = function() return "TS" end}))
"""


def test_module_seeall_strictness_and_pretty_printer_match_nmap(tmp_path):
    expected = compare(tmp_path, MODULES)
    assert expected[0] == "_M=self,_NAME=zz.yy.xx,_PACKAGE=zz.yy mt=nil loaded=false fresh=true"
    assert "undeclared stdnse field -> false \"<pos>variable 'no_such_function' is not " \
           "declared\"" in expected
    assert "functions 45" in expected
    assert 'pp map true "{\\x0a|\\x09|[|\\"a\\"|] = |1|,\\x0a|}"' in expected


# -- make_buffer -------------------------------------------------------------------------------

def _peers_module():
    spec = importlib.util.spec_from_file_location(
        "nsock_socket_peers_stdnse", Path(__file__).resolve().parent.parent / "nsock" /
        "test_sockets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def peers(tmp_path):
    owned = _peers_module().Peers(tmp_path)
    yield owned
    owned.close()


def test_make_buffer_matches_nmap(tmp_path, peers):
    chunks = peers.chunks([b"a\n", b"b\n", b"c\n", b"d\n"], gap_s=0.05)
    crlf = peers.chunks([b"x\r\ny\n", b"z"], gap_s=0.05)
    close = peers.banner(b"bye\n", then_close=True)
    silent = peers.silent()
    body = f"""
    for _, spec in ipairs({{{{{chunks}, "\\n"}}, {{{crlf}, "\\r?\\n"}}, {{{close}, "\\n"}},
                           {{{close}, "y"}}, {{{chunks}, "b\\nc"}}, {{{silent}, "\\n"}}}}) do
      local s = nmap.new_socket()
      s:set_timeout(300)
      s:connect("127.0.0.1", spec[1])
      local buf = stdnse.make_buffer(s, spec[2])
      local row = {{}}
      for i = 1, 4 do
        local r = table.pack(buf())
        for j = 1, r.n do r[j] = show(r[j]) end
        row[#row + 1] = table.concat(r, ",", 1, r.n) .. "/" .. r.n
      end
      s:close()
      out[#out + 1] = table.concat(row, " ")
    end
    """
    expected = compare(tmp_path, textwrap.dedent(body))
    assert expected[0] == '"a"/1 "b"/1 "c"/1 "d"/1'
    assert expected[1] == '"x"/1 "y"/1 "z"/1 nil,"EOF"/2'
    assert expected[5] == 'nil,"TIMEOUT"/2 nil,"TIMEOUT"/2 nil,"TIMEOUT"/2 nil,"TIMEOUT"/2'


# -- logging -----------------------------------------------------------------------------------

LOGGING = """
local stdnse = require "stdnse"
stdnse.debug("m-debug-default %d", 1)
stdnse.debug(1, "m-debug1 %s", "x")
stdnse.debug(2, "m-debug2")
stdnse.debug1("m-D1 %s", "y")
stdnse.debug2("m-D2")
stdnse.verbose("m-verbose-default")
stdnse.verbose1("m-V1")
stdnse.print_debug("m-pd-default %s", "z")
stdnse.print_debug(1, "m-pd1")
stdnse.print_debug(2, "m-pd2")
stdnse.print_verbose(1, "m-pv1")
stdnse.print_verbose("m-pv-default")
stdnse.debug("%d%%", 5)
local ok, err = pcall(stdnse.debug, 1, "m-missing %s")
return tostring(ok)
"""


def test_debug_verbose_and_their_deprecated_forms_log_like_nmap(tmp_path, nmap_path):
    script = tmp_path / "lua-check.nse"
    script.write_text(_lua_check_source(LOGGING))
    done = subprocess.run([nmap_path, "--unprivileged", "-n", "-d", "--script", str(script)],
                          capture_output=True, text=True, timeout=60, check=True)
    theirs = [line for line in done.stdout.splitlines()
              if line.startswith("NSE: ") and ("m-" in line or "5%" in line)]
    (tmp_path / "ours").mkdir()
    ran = run(tmp_path / "ours", {"lua-check": _lua_check_source(LOGGING)}, phase="prerule",
              debugging=1, verbosity=1)
    ours = [line for line in ran.log if "m-" in line or "5%" in line]
    assert ours == theirs
    assert "NSE: [lua-check] m-D1 y" in ours
    assert "NSE: m-pd-default z" in ours  # the deprecated forms print no thread prefix
    assert not any("m-debug2" in line or "m-pd2" in line for line in ours)
    assert ran.results[0].output == "false"
