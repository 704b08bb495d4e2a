"""nselib/shortport.lua: rules evaluated on hand-made host and port tables, the likely HTTP /
SSL / SSH ports and service names, port ranges, and shortport.ssl's TLS probe of ports whose
service is only a guess, against peers on 127.0.0.1.

The same Lua runs under the installed nmap with Nmap's own shortport; the answers must be
equal (error positions left out), in both of our API profiles. The last test scans a TLS
server with a portrule script through nmap and through `nsecluster scan`."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import NMAP_SERVICES, run_nsecluster
from nse_support import run_lua, run_lua_nmap

from worker.nse.profile import NMAP7, SEED

PRELUDE = r"""
local shortport = require "shortport"
local out = {}
local function P(num, proto, state, svc)
  return {number = num, protocol = proto or "tcp", state = state or "open", service = svc,
          version = {name = svc, name_confidence = 3}}
end
local function t(label, rule, port)
  local ok, v = pcall(rule, {}, port)
  out[#out + 1] = label .. " " .. (ok and tostring(v) or "ERR:" .. tostring(v))
end
local function mk(label, f, ...)
  local ok, r = pcall(f, ...)
  if not ok then out[#out + 1] = label .. " MKERR:" .. tostring(r) return nil end
  return r
end
"""
EPILOGUE = "\nreturn table.concat(out, '\\n')\n"
POSITION = re.compile(r'(?:\.\.\.|/)[^\s"]*?\.(?:lua|nse):\d+: ')  # Lua may shorten paths


def compare(tmp_path: Path, body: str, ports_prelude: str = "") -> list[str]:
    source = ports_prelude + PRELUDE + body + EPILOGUE
    expected = POSITION.sub("<pos>", run_lua_nmap(tmp_path, source)).split("\n")
    for profile in (SEED, NMAP7):
        (tmp_path / profile.name).mkdir(exist_ok=True)
        ours = POSITION.sub("<pos>", run_lua(tmp_path / profile.name, source, profile))
        assert ours.split("\n") == expected, f"{profile.name} differs from nmap"
    return expected


def test_likely_ports_and_lists_match_nmap(tmp_path):
    body = """
    local function dump(list) local a = {} for i, v in ipairs(list) do a[i] = tostring(v) end
      return #list .. " " .. table.concat(a, ",") end
    out[#out + 1] = "PORTS " .. dump(shortport.LIKELY_HTTP_PORTS)
    out[#out + 1] = "SERVICES " .. dump(shortport.LIKELY_HTTP_SERVICES)
    local hits = {ssl = {}, http = {}, ssh = {}}
    for n = 0, 65535 do
      local port = {number = n, protocol = "tcp", state = "open", service = "unknown",
                    version = {name = "unknown", name_confidence = 10, service_tunnel = "none"}}
      for name, list in pairs(hits) do
        if shortport[name]({}, port) then list[#list + 1] = n end
      end
    end
    for _, name in ipairs({"ssl", "http", "ssh"}) do
      out[#out + 1] = name .. " " .. table.concat(hits[name], ",")
    end
    local keys = {}
    for k, v in pairs(shortport) do keys[#keys + 1] = k .. ":" .. type(v) end
    table.sort(keys)
    out[#out + 1] = table.concat(keys, " ")
    out[#out + 1] = tostring(getmetatable(shortport).__index == _G)
    """
    expected = compare(tmp_path, body)
    assert expected[0] == "PORTS 11 80,443,631,7080,8080,8443,8088,5800,3872,8180,8000"
    assert expected[4] == "ssh 22,830,2222,2382,22222,55554"
    assert "port_range:function" in expected[5] and "LIKELY_HTTP_PORTS:table" in expected[5]


def test_service_names_of_http_ssl_ssh_match_nmap(tmp_path):
    if not NMAP_SERVICES.is_file():
        pytest.fail(f"{NMAP_SERVICES} is required (Debian's nmap-common)")
    names = sorted({line.split()[0] for line in NMAP_SERVICES.read_text().splitlines()
                    if line and not line.startswith("#") and '"' not in line.split()[0]})
    names += ["soap", "caldav", "carddav", "webdav", "ssl/http", "HTTP", "SSH", ""]
    body = "local names = {" + ",".join(f'"{n}"' for n in names) + "}\n" + """
    local hits = {ssl = {}, http = {}, ssh = {}}
    for _, name in ipairs(names) do
      local port = {number = 1, protocol = "tcp", state = "open", service = name,
                    version = {name = name, name_confidence = 10}}
      for kind, list in pairs(hits) do
        if shortport[kind]({}, port) then list[#list + 1] = name end
      end
    end
    for _, kind in ipairs({"ssl", "http", "ssh"}) do
      out[#out + 1] = kind .. " " .. table.concat(hits[kind], ",")
    end
    """
    expected = compare(tmp_path, body)
    assert expected[2] == "ssh netconf-ssh,ssh"
    assert "https" in expected[0].split(" ")[1].split(",")


def test_tunnel_state_protocol_and_version_fields_match_nmap(tmp_path):
    body = """
    for _, num in ipairs({443, 22, 80, 1}) do
    for _, svc in ipairs({"-", "unknown", "https", "ssh", "http", "soap"}) do
    for _, vt in ipairs({"conf3", "conf10", "tunnel", "nover", "noconf"}) do
      local name = svc ~= "-" and svc or nil
      local version
      if vt == "conf3" then version = {name = name, name_confidence = 3, service_tunnel = "none"}
      elseif vt == "conf10" then version = {name = name, name_confidence = 10}
      elseif vt == "tunnel" then version = {name = name, name_confidence = 10, service_tunnel = "ssl"}
      elseif vt == "noconf" then version = {name = name, service_tunnel = "none"}
      end
      local port = {number = num, protocol = "tcp", state = "open", service = name, version = version}
      local r = {}
      for _, f in ipairs({"ssl", "http", "ssh"}) do
        local ok, v = pcall(shortport[f], {}, port)
        r[#r + 1] = ok and tostring(v) or "ERR:" .. tostring(v)
      end
      out[#out + 1] = table.concat({num, svc, vt, table.concat(r, " ")}, " ")
    end end end
    for _, f in ipairs({"ssl", "http", "ssh"}) do
      local num = ({ssl = 443, http = 80, ssh = 22})[f]
      local row = {}
      for _, st in ipairs({"open", "open|filtered", "closed", "filtered", "unfiltered", "-"}) do
        for _, pr in ipairs({"tcp", "udp", "sctp", "-"}) do
          local port = {number = num, protocol = pr ~= "-" and pr or nil, state = st ~= "-" and st or nil}
          local ok, v = pcall(shortport[f], {}, port)
          row[#row + 1] = st .. "/" .. pr .. "=" .. (ok and tostring(v) or "E")
        end
      end
      out[#out + 1] = f .. ": " .. table.concat(row, " ")
      out[#out + 1] = f .. " tunnel closed udp: " .. tostring(shortport[f]({}, {number = 1,
        protocol = "udp", state = "closed", version = {service_tunnel = "ssl"}}))
      out[#out + 1] = f .. " no host: " .. tostring(shortport[f](nil, {number = 1,
        protocol = "tcp", state = "open", version = {name_confidence = 3}}))
    end
    """
    expected = compare(tmp_path, body)
    assert "443 ssh conf10 true true true" in expected
    assert "22 - noconf ERR:<pos>attempt to compare nil with number false true" in expected
    assert "ssl tunnel closed udp: true" in expected


GENERIC = r"""
local r = shortport.portnumber(80)
for _, st in ipairs({"open", "open|filtered", "filtered", "closed", "unfiltered", "closed|filtered"}) do
  t("pn80 " .. st, r, P(80, "tcp", st))
end
for _, pr in ipairs({"tcp", "udp", "sctp"}) do t("pn80 " .. pr, r, P(80, pr)) end
t("pn80 81", r, P(81))
r = shortport.portnumber({80, 443, "1000-1002", "2000"})
for _, n in ipairs({80, 443, 999, 1000, 1001, 1002, 1003, 2000, 2001}) do t("pnlist " .. n, r, P(n)) end
t("pnstr", shortport.portnumber("80"), P(80))
t("pnstrrange", shortport.portnumber("80-90"), P(85))
t("pnfloat", shortport.portnumber(80.0), P(80))
t("pnnil", shortport.portnumber(nil), P(75))
r = shortport.portnumber(53, "udp")
t("pnudp udp", r, P(53, "udp")) t("pnudp tcp", r, P(53, "tcp"))
r = shortport.portnumber(53, {"udp", "tcp"})
t("pnprotos udp", r, P(53, "udp")) t("pnprotos tcp", r, P(53, "tcp")) t("pnprotos sctp", r, P(53, "sctp"))
r = shortport.portnumber(53, "tcp", "closed")
t("pnstates closed", r, P(53, "tcp", "closed")) t("pnstates open", r, P(53, "tcp", "open"))
r = shortport.portnumber(53, "tcp", {"filtered", "open"})
t("pnstates2 filtered", r, P(53, "tcp", "filtered")) t("pnstates2 o|f", r, P(53, "tcp", "open|filtered"))
for _, spec in ipairs({"80-70", "x", "70000", "1-70000", "70000-80", " 80", "80,81", "80-80"}) do
  t("pnbad " .. spec, shortport.portnumber({spec}), P(75))
end
t("pn first wins", shortport.portnumber({80, "x"}), P(80))
t("pn bad first", shortport.portnumber({"x", 80}), P(80))
t("pn bad, wrong proto", shortport.portnumber({"x"}, "udp"), P(80, "tcp"))
t("pn bad, wrong state", shortport.portnumber({"x"}, "tcp", "closed"), P(80, "tcp", "open"))
r = shortport.service("http")
t("svc http", r, P(1, "tcp", "open", "http")) t("svc HTTP", r, P(1, "tcp", "open", "HTTP"))
t("svc nil", r, P(1)) t("svc https", r, P(1, "tcp", "open", "https"))
t("svc udp", r, P(1, "udp", "open", "http")) t("svc o|f", r, P(1, "tcp", "open|filtered", "http"))
t("svc filtered", r, P(1, "tcp", "filtered", "http"))
local vonly = P(1) vonly.version = {name = "http"} t("svc version name only", r, vonly)
r = shortport.service({"http", "ftp"}, {"tcp", "udp"}, {"open", "closed"})
t("svclist ftp udp closed", r, P(1, "udp", "closed", "ftp")) t("svclist o|f", r, P(1, "udp", "open|filtered", "ftp"))
r = shortport.port_or_service(80, "http")
t("pos 80", r, P(80)) t("pos http", r, P(1, "tcp", "open", "http")) t("pos ftp", r, P(1, "tcp", "open", "ftp"))
t("pos 80 udp", r, P(80, "udp")) t("pos 80 o|f", r, P(80, "tcp", "open|filtered"))
r = shortport.port_or_service({80, 8080}, {"http", "www"}, "udp", "open")
t("posl 8080 udp", r, P(8080, "udp")) t("posl www udp", r, P(5, "udp", "open", "www"))
t("posl 8080 tcp", r, P(8080, "tcp"))
local vi = nmap.version_intensity()
for _, d in ipairs({-2, 0, 1}) do
  t("vpos rarity " .. d, shortport.version_port_or_service(80, "http", "tcp", "open", vi + d), P(80))
end
t("vpos no rarity", shortport.version_port_or_service(80, "http"), P(80))
t("vpos other port", shortport.version_port_or_service(80, "http"), P(81))
t("vpos by service", shortport.version_port_or_service({}, "http"), P(1, "tcp", "open", "http"))
out[#out + 1] = "excluded " .. tostring(shortport.port_is_excluded(9100, "tcp")) .. " "
  .. tostring(shortport.port_is_excluded(80, "tcp"))
"""


def test_portnumber_service_and_port_or_service_match_nmap(tmp_path):
    expected = compare(tmp_path, GENERIC)
    assert "pn80 open|filtered true" in expected and "pn80 udp false" in expected
    assert "pnbad 80-70 ERR:<pos>Incorrect port range specification, the starting port " \
           "should have a smaller value than the ending port." in expected
    assert "pnbad 70000 ERR:<pos>Port range number out of range (0-65535)." in expected
    assert "svc version name only false" in expected


# Specs on which Nmap 7.93's port_range never returns (",80", "x,80", "80,,90", "t:80",
# "S:80", "1-100,http", "80 , 90") are left out: ours stops reading there instead.
PORT_RANGES = ["80", "0", "65535", "70000", "80-80", "1-5,4-8", "0-65535", "1-10,20",
               "T:30", "T:30,40", "U:40,30", "T:30,U:40,20", "20,T:30", "1-10,20,T:30,U:40",
               "T:1-5", "U:1-5,T:6", "80,x", "80,", "T:", "T: 80", "U:70000", "T:80,T:90",
               "U:80,U:90,T:100", "-100", "1 -5", "50-", "1-10,50-", "50-,1-10",
               "T:30,U:40,50-", "U:40,50-", "T:30,50-", "10-1,5", "5,10-1", "T:10-1", "1-2-3",
               "1-10,20,T:30,U:40,50-", "80:90", ""]


def test_port_range_matches_nmap(tmp_path):
    body = "local specs = {" + ",".join(f'"{s}"' for s in PORT_RANGES) + "}\n" + """
    for _, spec in ipairs(specs) do
      local r = mk(spec, shortport.port_range, spec)
      if r then
        local row = {}
        for _, n in ipairs({0, 1, 3, 5, 6, 10, 11, 20, 30, 40, 50, 60, 80, 90, 100, 65535}) do
          local cell = n .. ":"
          for _, pr in ipairs({"tcp", "udp", "sctp"}) do
            local ok, v = pcall(r, {}, {number = n, protocol = pr, state = "open"})
            cell = cell .. (not ok and "E" or (v and "T" or "f"))
          end
          local ok, v = pcall(r, {}, {number = n, protocol = "tcp", state = "closed"})
          row[#row + 1] = cell .. (not ok and "E" or (v and "T" or "f"))
        end
        out[#out + 1] = spec .. " => " .. table.concat(row, " ")
      end
    end
    mk("number", shortport.port_range, 80)
    mk("table", shortport.port_range, {"80"})
    """
    expected = compare(tmp_path, body)
    assert "1-10,20,T:30,U:40 => 0:ffff 1:TTff" in expected[13]
    assert expected[-1] == "table MKERR:<pos>Incorrect port range specification."


# -- the TLS probe -----------------------------------------------------------------------------

def _peers_module():
    spec = importlib.util.spec_from_file_location(
        "nsock_socket_peers_shortport", Path(__file__).resolve().parent.parent / "nsock" /
        "test_sockets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PEERS = _peers_module()


@pytest.fixture
def peers(tmp_path):
    owned = PEERS.Peers(tmp_path)
    yield owned
    owned.close()


def answering(peers, answer: bytes, hellos: list) -> int:
    """A peer that reads one TLS record (or 2 s), records it, answers ``answer`` and closes."""
    def handler(conn):
        conn.settimeout(2)
        data = b""
        try:
            while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        hellos.append(data)
        conn.sendall(answer)
        time.sleep(0.2)
        conn.close()
    return peers.tcp(handler)


def test_ssl_probes_ports_of_unknown_service_like_nmap(tmp_path, peers):
    hellos: list[bytes] = []
    ports = {
        "tls": peers.tls_echo()[0],
        "echo": peers.echo(),
        "banner": peers.banner(b"hello\r\n"),
        "closed": PEERS.closed_port(),
        "alert": answering(peers, b"\x15\x03\x03\x00\x02\x02\x28", hellos),
        "http": answering(peers, b"HTTP/1.0 400 Bad request\r\n\r\n", hellos),
        "done": answering(peers, b"\x16\x03\x03\x00\x04\x0e\x00\x00\x00", hellos),
    }
    prelude = "local PORTS = {" + ",".join(f"{k}={v}" for k, v in ports.items()) + "}\n"
    body = """
    for _, name in ipairs({"tls", "echo", "banner", "closed", "alert", "http", "done"}) do
      for _, conf in ipairs({3, 10}) do
        local host = {ip = "127.0.0.1", registry = {}}
        local port = {number = PORTS[name], protocol = "tcp", state = "open", service = "unknown",
                      version = {name = "unknown", name_confidence = conf, service_tunnel = "none"}}
        local ok, first = pcall(shortport.ssl, host, port)
        local again = shortport.ssl(host, port)
        local kept = host.registry.ssl and host.registry.ssl[PORTS[name] .. "tcp"]
        local keys = 0
        for _ in pairs(host.registry) do keys = keys + 1 end
        out[#out + 1] = name .. " conf" .. conf .. ": " .. tostring(ok) .. " " .. tostring(first)
          .. " again " .. tostring(again) .. " kept " .. tostring(kept) .. " keys " .. keys
      end
    end
    local host = {ip = "127.0.0.1", registry = {}}
    local closed_state = {number = PORTS.tls, protocol = "tcp", state = "closed",
                          version = {name_confidence = 3}}
    out[#out + 1] = "closed state " .. tostring(shortport.ssl(host, closed_state))
    out[#out + 1] = "no registry " .. tostring(shortport.ssl({ip = "127.0.0.1"}, closed_state))
    out[#out + 1] = "no ip " .. tostring((pcall(shortport.ssl, {registry = {}}, closed_state)))
    out[#out + 1] = "http is no probe " .. tostring(shortport.http({ip = "127.0.0.1", registry = {}},
      {number = PORTS.tls, protocol = "tcp", state = "open", version = {name_confidence = 3}}))
    """
    expected = compare(tmp_path, body, prelude)
    assert expected[0] == "tls conf3: true true again true kept true keys 1"
    assert expected[1] == "tls conf10: true false again false kept nil keys 0"
    assert "http conf3: true false again false kept false keys 1" in expected
    assert "alert conf3: true true again true kept true keys 1" in expected
    assert "done conf3: true nil again false kept false keys 1" in expected
    assert "closed state true" in expected
    # Every probe begins with a TLS handshake record holding a ClientHello.
    assert hellos and all(h[:1] == b"\x16" and h[1] == 3 and h[5] == 1 for h in hellos)


PROBE_SCRIPT = """
local comm = require "comm"
local shortport = require "shortport"
description = "TLS probe check"
categories = {"safe"}
portrule = function(host, port) return shortport.ssl(host, port) end
action = function(host, port)
  local sock, answer, proto = comm.tryssl(host, port, "ping\\n", {timeout = 3000})
  if sock then sock:close() end
  return ("%s %s %s"):format(tostring(sock and true), tostring(answer), proto)
end
"""


def script_outputs(xml_path: Path) -> dict[int, str]:
    outputs = {}
    for port in ET.parse(xml_path).getroot().iter("port"):
        for script in port.iter("script"):
            outputs[int(port.get("portid"))] = script.get("output")
    return outputs


def test_a_portrule_finds_tls_on_an_unusual_port_as_nmap_does(tmp_path, peers, nmap_path):
    tls, _ = peers.tls_echo()
    plain = peers.echo()
    script = tmp_path / "tls-probe-check.nse"
    script.write_text(PROBE_SCRIPT)
    common = ["-n", "-Pn", "-p", f"{tls},{plain}", "--script", str(script)]
    subprocess.run([nmap_path, "--unprivileged", "-sT", *common, "-oX", str(tmp_path / "n.xml"),
                    "127.0.0.1"], capture_output=True, text=True, timeout=120, check=True)
    done = run_nsecluster("scan", "--unprivileged", "-sT", *common, "-oX", tmp_path / "o.xml",
                          "127.0.0.1")
    assert done.returncode == 0, done.stderr
    theirs = script_outputs(tmp_path / "n.xml")
    assert theirs == {tls: "true ping\n ssl"}
    assert script_outputs(tmp_path / "o.xml") == theirs
