"""nselib/ipOps.lua: every function on valid, odd and invalid input, compared with Nmap 7.93's
ipOps running the same Lua under the installed nmap (error positions left out), in both of our
API profiles; a few plain expectations pin the values down as well."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from nse_support import run_lua, run_lua_nmap

from worker.nse.profile import NMAP7, SEED

PRELUDE = r"""
local ipOps = require "ipOps"
local out = {}
local function show(v)
  if type(v) == "string" then
    return '"' .. v:gsub('[^\32-\126]', function(c) return ("\\x%02x"):format(c:byte()) end)
               :gsub('"', '\\"') .. '"'
  elseif type(v) == "table" then
    local parts = {}
    for _, x in ipairs(v) do parts[#parts + 1] = show(x) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return tostring(v)
end
local function P(name, ...)
  local r = table.pack(pcall(ipOps[name], ...))
  for i = 1, r.n do r[i] = show(r[i]) end
  local a = table.pack(...)
  for i = 1, a.n do a[i] = show(a[i]) end
  out[#out + 1] = name .. "(" .. table.concat(a, ",", 1, a.n) .. ") -> " .. table.concat(r, " ", 1, r.n)
end
"""
EPILOGUE = "\nreturn table.concat(out, '\\n')\n"
POSITION = re.compile(r'(?:\.\.\.|/)[^\s"]*?\.(?:lua|nse):\d+: ')  # Lua may shorten paths


def compare(tmp_path: Path, body: str) -> list[str]:
    source = PRELUDE + body + EPILOGUE
    expected = POSITION.sub("<pos>", run_lua_nmap(tmp_path, source)).split("\n")
    for profile in (SEED, NMAP7):
        (tmp_path / profile.name).mkdir(exist_ok=True)
        ours = POSITION.sub("<pos>", run_lua(tmp_path / profile.name, source, profile))
        assert ours.split("\n") == expected, f"{profile.name} differs from nmap"
    return expected


def lua_string(text: str) -> str:
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\t", "\\t"))
    return f'"{escaped}"'


def lua_list(items) -> str:
    return "{" + ", ".join(lua_string(item) for item in items) + "}"


IPV4_TEXT = ["1.2.3.4", "1.2.3", "1", "1.2", "0.0.0.0", "255.255.255.255", "01.002.0003.04",
             "0000255.1.1.1", "0256.1.1.1", "1.2.3.4.5", "1.2.3.4.0", "256.1.1.1", "1.2.3.999",
             ".", "...", "1.2.3.4.", "1.2.3.4..", "1.2..", "1..2.3", ".1.2.3", "x", "1e1.1.1.1",
             "+1.1.1.1", "-1.2.3.4", "1.1.1.1\n", " 1.2.3.4", "1.2.3.4 ", "1.2.3.4/", "0x1.2.3.4",
             "192.168.1.1/24", "ffff"]
IPV6_TEXT = ["::", "::1", "1::", "1::2", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8",
             "::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "::1.2.3.4", "FFFF::abcd", "1:::2", ":1::2",
             "1:2:3:4:5:6:7", ":::", "1:", ":1", "1:2", "::::", "1::::2", "1:2::::3",
             "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "g::", "a:b:c:d:e:f:1::",
             "::a:b:c:d:e:f:1:2", "a:b:c:d::e:f:1:2", "a:b:c:d::e:f:1", "1:2:3:4:5:6:7:8::",
             "1::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:", ":1:2:3:4:5:6:7:8", "::1:", "1::2:",
             "fe80::1%eth0", "[::1]", "::1 ", " ::1", "::-1", "::0x1", "::ABCDEF", "::ABCD",
             "::0000", "::00000", "1:2:3:4:5:6:7:1.2.3.4", "1:2:3:4:5:1.2.3.4", "::1.2.3.4.5",
             "1.2.3.4::", "::1.2.3.4:5", "::1.2.3.4x", "::x1.2.3.4", "1.2::3", "::1..2", "::.1",
             "::1.2.3", "::256.1.1.1", "::1.2.3.4/24", "::%1", "::ffff:0:1.2.3.4",
             "0001:0002::", "x::1.2.3.4.5", "g::1.2.3.4"]


def test_expand_ip_matches_nmap(tmp_path):
    body = f"""
    for _, ip in ipairs({lua_list(IPV4_TEXT + IPV6_TEXT)}) do
      P("expand_ip", ip)
    end
    for _, ip in ipairs({{"1.2.3.4", "1.2.3", "::1", "::ffff:1.2.3.4", "::1.2.3.4", "g::", "x"}}) do
      for _, family in ipairs({{"inet", "inet6", "x"}}) do P("expand_ip", ip, family) end
    end
    P("expand_ip", nil) P("expand_ip", 5) P("expand_ip", {{}}) P("expand_ip", "")
    P("expand_ip", ":") P("expand_ip", "::1:2:3:4:5:6:7:8:9")
    """
    expected = compare(tmp_path, body)
    assert 'expand_ip("1.2.3") -> true "1.2.3.0"' in expected
    assert 'expand_ip("::ffff:1.2.3.4") -> true "0:0:0:0:0:ffff:102:304"' in expected
    assert 'expand_ip("1.2.3.4","inet6") -> true "0:0:0:0:0:ffff:102:304"' in expected
    assert 'expand_ip("::1.2.3.4.5") -> true nil "Error in ipOps.expand_ip: An address ' \
           'assumed to be IPv4in6 was malformed."' in expected
    assert "expand_ip(\":\") -> false \"<pos>attempt to index a nil value (field '?')\"" \
        in expected


PRIVATE = ["192.168.1.1", "10.0.0.1", "172.16.0.1", "172.31.255.255", "172.32.0.1", "127.0.0.1",
           "169.254.3.4", "169.253.1.1", "8.8.8.8", "0.0.0.0", "0.255.255.255", "100.64.0.1",
           "192.0.0.1", "192.0.1.1", "192.0.2.1", "192.88.99.1", "198.18.0.1", "198.19.255.255",
           "198.20.0.0", "198.51.100.1", "203.0.113.1", "224.0.0.1", "224.0.0.255", "224.0.1.1",
           "239.1.1.1", "240.0.0.1", "255.255.255.255", "223.255.255.255", "::1", "::", "::2",
           "fe80::1", "FE80::1", "febf::1", "fe7f::1", "fc00::1", "fd00::1", "fbff::1",
           "fec0::1", "ff02::1", "2001:db8::1", "::ffff:192.168.1.1", "::192.168.1.1",
           "1.2.3", "1.2.3.4.5", "x", "", "192.168.1.1/24"]


def test_is_private_todword_fromdword_parts_match_nmap(tmp_path):
    body = f"""
    for _, ip in ipairs({lua_list(PRIVATE)}) do P("isPrivate", ip) end
    for _, ip in ipairs({lua_list(["1.2.3.4", "0.0.0.0", "255.255.255.255", "1.2.3", "1", "1.2",
                                   "256.0.0.1", "::1", "x", "01.02.03.04", "1.2.3.4 "])}) do
      P("todword", ip)
    end
    P("todword", nil) P("todword", 5)
    for _, n in ipairs({{0, 1, 16909060, 4294967295, 4294967296, -1, 2^32, 1.5, "16909060"}}) do
      P("fromdword", n)
    end
    P("fromdword", nil)
    for _, ip in ipairs({lua_list(["1.2.3.4", "1.2.3", "1", "::1", "1:2:3:4:5:6:7:8",
                                   "::ffff:1.2.3.4", "x", "", "256.1.1.1", "fe80::1%eth0",
                                   "FFFF::abcd"])}) do
      P("get_parts_as_number", ip)
    end
    """
    expected = compare(tmp_path, body)
    assert 'isPrivate("172.16.0.1") -> true true "172.16/12"' in expected
    assert 'isPrivate("fd00::1") -> true true "FC00::/7"' in expected
    assert 'isPrivate("8.8.8.8") -> true false nil' in expected
    assert 'todword("1.2.3.4") -> true 16909060' in expected
    assert 'fromdword(16909060) -> true "1.2.3.4"' in expected


COMPARISONS = [("1.2.3.4", "eq", "1.2.3.4"), ("1.2.3.4", "lt", "1.2.3.5"),
               ("1.2.3.4", "gt", "1.2.3.5"), ("1.2.3.4", "le", "1.2.3.4"),
               ("1.2.3.4", "ge", "1.2.3.4"), ("1.2.3.4", "ne", "1.2.3.4"),
               ("1.2.3.4", "ne", "1.2.3.5"), ("1.2.3.4", "eq", "::ffff:1.2.3.4"),
               ("1.2.3.4", "lt", "::1"), ("::1", "lt", "1.2.3.4"), ("1.2.3.4", "ne", "::1"),
               ("1.2.3.4", "ge", "::1"), ("1.2.3.4", "le", "::1"), ("::1", "gt", "1.2.3.4"),
               ("::1", "ge", "255.255.255.255"), ("::", "lt", "0.0.0.0"),
               ("1.2.3.4", "eq", "1.2.3.04"), ("1.2.3", "eq", "1.2.3.0"),
               ("::1", "eq", "0:0::1"), ("::1", "lt", "::2"), ("10.0.0.1", "gt", "9.255.255.255"),
               ("0.0.0.0", "eq", "::"), ("1.2.3.4", "xx", "1.2.3.4"), ("1.2.3.4", "LT", "1.2.3.5"),
               ("1.2.3.4", "eq", "x"), ("x", "eq", "1.2.3.4"), ("x", "xx", "1.2.3.4")]


def test_compare_and_sort_match_nmap(tmp_path):
    cases = ", ".join("{" + ", ".join(map(lua_string, case)) + "}" for case in COMPARISONS)
    body = f"""
    for _, c in ipairs({{{cases}}}) do P("compare_ip", c[1], c[2], c[3]) end
    P("compare_ip", "1.2.3.4", nil, "1.2.3.5")
    local function sorted(t, op)
      local r = table.pack(pcall(ipOps.ip_sort, t, op))
      out[#out + 1] = "ip_sort " .. tostring(r[1]) .. " n=" .. r.n .. " [" .. table.concat(t, ",") .. "]"
    end
    sorted({{"10.0.0.2", "10.0.0.10", "9.0.0.1", "::1", "1.2.3.4", "fe80::1", "10.0.0.2",
             "::ffff:1.2.3.4", "0.0.0.0", "::"}})
    sorted({{"3.3.3.3", "1.1.1.1", "2.2.2.2"}}, "gt")
    sorted({{"3.3.3.3", "1.1.1.1", "2.2.2.2"}}, "xx")
    sorted({{"3.3.3.3", "1.1.1.1", "2.2.2.2"}}, function(a, b) return a < b end)
    sorted({{"b::", "a::", "A::1", "1.2.3"}})
    sorted({{}})
    """
    expected = compare(tmp_path, body)
    assert 'compare_ip("1.2.3.4","lt","::1") -> true true' in expected
    assert "ip_sort true n=1 [0.0.0.0,1.2.3.4,9.0.0.1,10.0.0.2,10.0.0.2,10.0.0.10,::,::1," \
           "::ffff:1.2.3.4,fe80::1]" in expected


RANGES = ["1.2.3.0/24", "1.2.3.4/24", "1.2.3.4/32", "1.2.3.4/0", "1.2.3.4/31", "0.0.0.0/1",
          "1.2/16", "1.2.3/24", "1.2.3.4/08", "1.2.3.4/024", "1.2.3.4-1.2.3.9",
          "1.2.3.9-1.2.3.4", "1.2.3.4-1.2.3.4", "1.2.3.4 - 1.2.3.9", "1.2.3.4 -1.2.3.5",
          "1.2.3.4\t-\t1.2.3.5", " 1.2.3.4 - 1.2.3.5 ", "1.2.3.4-\n1.2.3.5", "01.2.3.4-1.2.3.5",
          "::1/64", "::/0", "::1/0128", "2001:db8::/33", "A::/16", "1:2/8", "::ffff:1.2.3.4/120",
          "fe80::1-fe80::ff", "::1-::2", "::1 - ::ffff", "::ffff:1.2.3.4-::ffff:1.2.3.9",
          "1.2.3.4", "1.2.3.4/33", "::1/129", "1.2.3.4/x", "x", "1.2.3.4-::1", "::1-1.2.3.4",
          "1.2.3.4/", "1.2.3.4/-1", "1.2.3.4/ 8", "1.2.3.4 /24", "1.2.3.4/24x", "1.2.3.4/1e1",
          "1.2.3.4/0x10", "1.2.3.4/+8", "/24", "x/24", "a/24", "x-1.2.3.4", "a-1.2.3.4",
          "1.2.3.4-a", "1.2.3.4-x", "1.2.3.4--1.2.3.5", "1.2.3.4-1.2.3.5-1.2.3.6", "-1.2.3.4",
          "1.2.3.4/24-1.2.3.5", "1.2.3.4-1.2.3.5/24", "1.2.3.999-1.2.3.4", "1.2.3.999/24",
          "g::/8", "fe80::1%1-fe80::2", "1.2.3.4/4294967296", "1.2.3.4/99999999999999999999",
          "1.2.3.4/24 ", " 1.2.3.4/24", "\t1.2.3.4/24", "1.2.3.4/24\n", ":/24"]


def test_ranges_match_nmap(tmp_path):
    checks = [("1.2.3.4", "1.2.3.0/24"), ("1.2.4.4", "1.2.3.0/24"),
              ("1.2.3.4", "1.2.3.4-1.2.3.10"), ("1.2.3.11", "1.2.3.4-1.2.3.10"),
              ("1.2.3.4", "1.2.3.4"), ("1.2.3.4", "0/0"), ("::1", "::/127"), ("::2", "::/127"),
              ("1.2.3.4", "::/0"), ("::1", "0.0.0.0/0"), ("1.2.3.4", "1.2.3.0/33"),
              ("x", "1.2.3.0/24"), ("x", "y"), ("1.2.3.4", "1.2.3.10-1.2.3.4"),
              ("fe80::5", "fe80::/10"), ("1.2.3", "1.2.3.0/24"),
              ("::ffff:1.2.3.4", "::ffff:1.2.3.0/120"), ("1.2.3.4", "::ffff:1.2.3.0/120")]
    pairs_ = ", ".join("{" + ", ".join(map(lua_string, pair)) + "}" for pair in checks)
    body = f"""
    for _, r in ipairs({lua_list(RANGES)}) do P("get_ips_from_range", r) end
    P("get_ips_from_range", nil) P("get_ips_from_range", 5)
    for _, c in ipairs({{{pairs_}}}) do P("ip_in_range", c[1], c[2]) end
    P("ip_in_range", nil, "1.2.3.0/24") P("ip_in_range", "1.2.3.4", nil)
    for _, c in ipairs({{{{"1.2.3.4", 24}}, {{"1.2.3.4", "24"}}, {{"1.2.3.4", 32}}, {{"1.2.3.4", 0}},
                        {{"1.2.3.4", 33}}, {{"::1", 64}}, {{"::1", 128}}, {{"::1", 129}},
                        {{"1.2.3.4", -1}}, {{"x", 8}}, {{"x", 33}}, {{"1.2.3.4", 1.5}},
                        {{"1.2.3.4", 8.0}}, {{"1.2.3.4", "x"}}, {{"1.2.3.4", "0x10"}},
                        {{"1.2.3.4", " 8"}}}}) do
      P("get_first_last_ip", c[1], c[2]) P("get_first_ip", c[1], c[2]) P("get_last_ip", c[1], c[2])
    end
    P("get_first_last_ip", "1.2.3.4", nil)
    """
    expected = compare(tmp_path, body)
    assert 'get_ips_from_range("1.2.3.4/24") -> true "1.2.3.0" "1.2.3.255"' in expected
    assert 'get_ips_from_range("::1/64") -> true "0:0:0:0:0:0:0:0" ' \
           '"0:0:0:0:ffff:ffff:ffff:ffff"' in expected
    assert 'ip_in_range("1.2.3.4","::/0") -> true nil "Error in ipOps.ip_in_range: IP address ' \
           'is of a different address family to Range."' in expected
    assert 'get_first_ip("1.2.3.4",24) -> true "1.2.3.0" nil' in expected


def test_binary_and_netmask_conversions_match_nmap(tmp_path):
    ips = ["1.2.3.4", "::1", "1.2.3", "x", "fe80::1:2", "::ffff:1.2.3.4", "0.0.0.0",
           "255.255.255.255"]
    binaries = ["00000001000000100000001100000100", "0" * 127 + "1", "1", "", "0101", "1" * 32,
                "1" * 33, "2", "0" * 31 + "2", "1" * 128, "1" * 129, "1" * 32 + "x"]
    body = f"""
    for _, ip in ipairs({lua_list(ips)}) do P("ip_to_str", ip) P("ip_to_bin", ip) end
    P("ip_to_str", nil) P("ip_to_bin", nil)
    for _, s in ipairs({{"\\1\\2\\3\\4", "\\1\\2\\3", "", "\\1\\2\\3\\4\\5",
                         " \\1\\13\\184\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\1",
                         "\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\255\\255\\1\\2\\3\\4"}}) do
      P("str_to_ip", s)
    end
    P("str_to_ip", nil) P("str_to_ip", 5)
    for _, b in ipairs({lua_list(binaries)}) do P("bin_to_ip", b) end
    P("bin_to_ip", nil)
    for _, h in ipairs({{"0", "f", "ff", "1a", "FF", "xyz", "", "0x1", "12 3"}}) do
      P("hex_to_bin", h)
    end
    P("hex_to_bin", nil) P("hex_to_bin", 12)
    for n = 0, 40 do
      local s = string.format("/%02d", n)
      out[#out + 1] = s .. "=" .. tostring(ipOps.cidr_to_subnet(s))
    end
    for _, c in ipairs({{"/1", "/9", "/100", "/024", "a/24", "/24/24", "/12x", "//24", "24", "",
                        "/16 ", "1.2.3.0/24"}}) do
      P("cidr_to_subnet", c)
    end
    P("cidr_to_subnet", 24) P("cidr_to_subnet", nil)
    for _, m in ipairs({{"255.255.255.0", "255.255.0.0", "0.0.0.0", "255.255.255.255",
                        "255.255.255.128", "255.0.255.0", "0.0.0.1", "x", "255.255.255", "::",
                        "ffff:ffff::"}}) do
      P("subnet_to_cidr", m)
    end
    P("subnet_to_cidr", 5) P("subnet_to_cidr", nil)
    """
    expected = compare(tmp_path, body)
    assert 'ip_to_str("1.2.3.4") -> true "\\x01\\x02\\x03\\x04"' in expected
    assert 'hex_to_bin("xyz") -> true false "<pos>Error in ipOps.hex_to_bin: Expected string ' \
           'representing a hexadecimal number."' in expected
    assert "/24=255.255.255.0" in expected and "/08=255.0.0.0" in expected
    assert 'subnet_to_cidr("255.255.255.128") -> true "/25"' in expected


@pytest.mark.parametrize("value", ["\\0\\1", "\\171\\205"], ids=["one", "abcd"])
def test_str_to_ip_shortens_ipv6_like_nmap_for_every_zero_pattern(tmp_path, value):
    """All 256 patterns of zero and non-zero groups."""
    body = f"""
    for mask = 0, 255 do
      local groups = {{}}
      for i = 1, 8 do groups[i] = ((mask >> (8 - i)) & 1) == 1 and "{value}" or "\\0\\0" end
      out[#out + 1] = ipOps.str_to_ip(table.concat(groups))
    end
    """
    expected = compare(tmp_path, body)
    assert len(expected) == 256
    assert expected[0] == "::" and expected[255].count(":") == 7
    assert expected[0b01000000] in ("0:1::", "0:abcd::")          # a lone leading zero stays
    assert expected[0b10010001] in ("1::1:0:0:0:1", "abcd::abcd:0:0:0:abcd")  # the first run


def test_module_shape_matches_nmap(tmp_path):
    body = """
    local keys = {}
    for k, v in pairs(ipOps) do keys[#keys + 1] = k .. ":" .. type(v) end
    table.sort(keys)
    out[#out + 1] = table.concat(keys, " ")
    out[#out + 1] = tostring(ipOps._M == ipOps) .. " " .. ipOps._NAME .. " "
      .. tostring(getmetatable(ipOps).__index == _G) .. " " .. tostring(ipOps.print == print)
    out[#out + 1] = select(2, pcall(function() return ipOps.no_such_thing end))
    """
    expected = compare(tmp_path, body)
    assert expected[1] == "true ipOps true true"
    assert expected[2] == "<pos>variable 'no_such_thing' is not declared"
