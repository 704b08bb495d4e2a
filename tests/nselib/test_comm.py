"""nselib/comm.lua against real peers on 127.0.0.1 (echo, banner, silent, closed, chunked,
TLS and UDP servers): opencon, tryssl, get_banner and exchange with their options, the error
stacks they return, the timeouts they set and the options table they change.

The same Lua runs under the installed nmap with Nmap's own comm; the answers must be equal
in both of our API profiles (error positions left out)."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from nse_support import run_lua, run_lua_nmap

from worker.nse.profile import NMAP7, SEED

_spec = importlib.util.spec_from_file_location(
    "nsock_socket_peers_comm", Path(__file__).resolve().parent.parent / "nsock" /
    "test_sockets.py")
PEERS = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(PEERS)

PRELUDE = r"""
local comm = require "comm"
local out = {}
local function show(v)
  if type(v) == "string" then
    return '"' .. v:gsub('[^\32-\126]', function(c) return ("\\x%02x"):format(c:byte()) end) .. '"'
  elseif (type(v) == "table" or type(v) == "userdata") and v.close then
    return "SOCK"
  elseif type(v) == "table" then
    return "E[" .. table.concat(v, "|") .. "]"
  end
  return tostring(v)
end
local function P(label, ...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = show(t[i]) end
  out[#out + 1] = label .. ": " .. table.concat(t, " ", 1, t.n) .. " n=" .. t.n
end
-- Call f, close any socket it returns, record the results.
local function T(label, f, ...)
  local r = table.pack(f(...))
  if show(r[1]) == "SOCK" then r[1]:close() end
  P(label, table.unpack(r, 1, r.n))
end
local host = {ip = "127.0.0.1"}
local function port(name, proto, extra)
  local p = {number = PORTS[name], protocol = proto or "tcp"}
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end
"""
EPILOGUE = "\nreturn table.concat(out, '\\n')\n"
POSITION = re.compile(r'(?:\.\.\.|/)[^\s"]*?\.(?:lua|nse):\d+: ')  # Lua may shorten paths


@pytest.fixture
def ports(tmp_path):
    peers = PEERS.Peers(tmp_path)
    yield {
        "banner": peers.banner(b"hello\r\nworld\n"),
        "bannerclose": peers.banner(b"bye\n", then_close=True),
        "echo": peers.echo(),
        "silent": peers.silent(),
        "closed": PEERS.closed_port(),
        "chunks": peers.chunks([b"a\n", b"b\n", b"c\n", b"d\n"], gap_s=0.2),
        "tls": peers.tls_echo()[0],
        "udp": peers.udp_echo(),
        "udpclosed": PEERS.closed_udp_port(),
    }
    peers.close()


def compare(tmp_path: Path, ports: dict, body: str) -> list[str]:
    source = ("local PORTS = {" + ",".join(f"{k}={v}" for k, v in ports.items()) + "}\n"
              + PRELUDE + body + EPILOGUE)
    expected = POSITION.sub("<pos>", run_lua_nmap(tmp_path, source)).split("\n")
    for profile in (SEED, NMAP7):
        (tmp_path / profile.name).mkdir(exist_ok=True)
        ours = POSITION.sub("<pos>", run_lua(tmp_path / profile.name, source, profile))
        assert ours.split("\n") == expected, f"{profile.name} differs from nmap"
    return expected


OPENCON = """
local o = function(extra) local t = {timeout = 300} for k, v in pairs(extra or {}) do t[k] = v end return t end
T("echo", comm.opencon, host, port("echo"), "x", o())
T("echo recv_before", comm.opencon, host, port("echo"), "x", o({recv_before = true}))
T("silent", comm.opencon, host, port("silent"), "x", o())
T("silent recv_before no data", comm.opencon, host, port("silent"), nil, o({recv_before = true}))
T("silent recv_before empty data", comm.opencon, host, port("silent"), "", o({recv_before = true}))
T("banner no data", comm.opencon, host, port("banner"), nil, o())
T("banner recv_before no data", comm.opencon, host, port("banner"), nil, o({recv_before = true}))
T("bannerclose recv_before no data", comm.opencon, host, port("bannerclose"), "", o({recv_before = true}))
T("closed", comm.opencon, host, port("closed"), "x", o())
T("bad name", comm.opencon, "no-such-host.invalid", PORTS.echo, "x", o())
T("udp", comm.opencon, host, port("udp", "udp"), "u", o())
T("udp closed", comm.opencon, host, port("udpclosed", "udp"), "u", o())
T("proto udp on a tcp port table", comm.opencon, host, port("udp", "tcp"), "u", o({proto = "udp"}))
T("proto ssl tls", comm.opencon, host, port("tls"), "x", o({proto = "ssl"}))
T("proto ssl plain", comm.opencon, host, port("echo"), "x", o({proto = "ssl"}))
T("proto ssl closed", comm.opencon, host, port("closed"), "x", o({proto = "ssl"}))
T("lines apply to the first read only", comm.opencon, host, port("chunks"), "x", {timeout = 2000, lines = 3})
T("bytes", comm.opencon, host, port("chunks"), "x", {timeout = 2000, bytes = 3})
T("recv_before lines", comm.opencon, host, port("chunks"), "x", {timeout = 2000, lines = 2, recv_before = true})
T("recv_before bytes", comm.opencon, host, port("chunks"), "x", {timeout = 2000, bytes = 3, recv_before = true})
T("number port, host string", comm.opencon, "127.0.0.1", PORTS.echo, "x", o())
T("string port", comm.opencon, "127.0.0.1", tostring(PORTS.echo), "x", o())
T("table without protocol", comm.opencon, host, {number = PORTS.echo}, "x", o())
"""


def test_opencon_matches_nmap(tmp_path, ports):
    expected = compare(tmp_path, ports, OPENCON)
    assert 'echo: SOCK "x" nil n=3' in expected
    assert "silent: nil E[receive failed|TIMEOUT] nil n=3" in expected
    assert "closed: false E[Failed to connect|Could not connect|ERROR] n=2" in expected
    assert ('lines apply to the first read only: SOCK "a\\x0a" nil n=3') in expected
    assert 'recv_before lines: SOCK "c\\x0a" "a\\x0ab\\x0a" n=3' in expected


TRYSSL = """
local o = function(extra) local t = {timeout = 300} for k, v in pairs(extra or {}) do t[k] = v end return t end
T("echo", comm.tryssl, host, port("echo"), "x", o())
T("tls", comm.tryssl, host, port("tls"), "x", o())
T("closed", comm.tryssl, host, port("closed"), "x", o())
T("closed https", comm.tryssl, host, port("closed", "tcp", {service = "https"}), "x", o())
T("closed tunnel", comm.tryssl, host, port("closed", "tcp", {version = {service_tunnel = "ssl"}}), "x", o())
T("silent https", comm.tryssl, host, port("silent", "tcp", {service = "https"}), "x", o())
T("tls https", comm.tryssl, host, port("tls", "tcp", {service = "https"}), "x", o())
T("echo https", comm.tryssl, host, port("echo", "tcp", {service = "https"}), "x", o())
T("udp", comm.tryssl, host, port("udp", "udp"), "x", o())
T("udp closed", comm.tryssl, host, port("udpclosed", "udp"), "x", o())
T("proto option ignored", comm.tryssl, host, port("echo"), "x", o({proto = "ssl"}))
T("tls no data", comm.tryssl, host, port("tls"), "", o())
T("banner recv_before", comm.tryssl, host, port("banner"), "", o({recv_before = true}))
T("number port", comm.tryssl, "127.0.0.1", PORTS.echo, "x", o())
for _, name in ipairs({"echo", "tls", "closed"}) do
  local opts = {timeout = 300}
  local sock = comm.tryssl(host, port(name), "x", opts)
  if sock then sock:close() end
  out[#out + 1] = name .. " leaves opts.proto = " .. tostring(opts.proto)
end
local opts = {timeout = 300}
local sock = comm.tryssl(host, port("udp", "udp"), "x", opts)
if sock then sock:close() end
out[#out + 1] = "udp leaves opts.proto = " .. tostring(opts.proto)
"""


def test_tryssl_matches_nmap(tmp_path, ports):
    expected = compare(tmp_path, ports, TRYSSL)
    assert 'echo: SOCK "x" "tcp" nil n=4' in expected
    assert 'tls: SOCK "x" "ssl" nil n=4' in expected
    assert 'closed: false E[ssl failed|Failed to connect|Could not connect|ERROR] "none" nil ' \
           'n=4' in expected
    assert 'closed https: false E[tcp failed|Failed to connect|Could not connect|ERROR] ' \
           '"none" nil n=4' in expected
    assert "closed leaves opts.proto = ssl" in expected


BANNER_EXCHANGE = """
local o = function(extra) local t = {timeout = 300} for k, v in pairs(extra or {}) do t[k] = v end return t end
T("banner", comm.get_banner, host, port("banner"), o())
T("banner no opts", comm.get_banner, host, port("bannerclose"))
T("banner of a closed port", comm.get_banner, host, port("closed"), o())
T("banner of a silent tls port", comm.get_banner, host, port("tls"), o())
T("banner of a silent udp port", comm.get_banner, host, port("udp", "udp"), o())
T("banner lines", comm.get_banner, host, port("chunks"), {timeout = 2000, lines = 2})
T("banner bytes", comm.get_banner, host, port("chunks"), {timeout = 2000, bytes = 3})
T("banner number port", comm.get_banner, "127.0.0.1", PORTS.banner, o())
local opts = {timeout = 300}
comm.get_banner(host, port("banner"), opts)
out[#out + 1] = "get_banner leaves " .. tostring(opts.recv_before) .. " " .. tostring(opts.proto)
T("exchange", comm.exchange, host, port("echo"), "ping\\n", o())
T("exchange nothing", comm.exchange, host, port("echo"), "", o())
T("exchange closed", comm.exchange, host, port("closed"), "x", o())
T("exchange bad name", comm.exchange, "no-such-host.invalid", PORTS.echo, "x", o())
T("exchange lines", comm.exchange, host, port("chunks"), "x", {timeout = 2000, lines = 2})
T("exchange bytes", comm.exchange, host, port("chunks"), "x", {timeout = 2000, bytes = 3})
T("exchange one read", comm.exchange, host, port("chunks"), "x", {timeout = 2000})
T("exchange ignores recv_before", comm.exchange, host, port("echo"), "x", o({recv_before = true}))
T("exchange banner", comm.exchange, host, port("banner"), "x", o())
T("exchange silent", comm.exchange, host, port("silent"), "x", o())
T("exchange udp", comm.exchange, host, port("udp", "udp"), "dgram", o())
T("exchange proto udp", comm.exchange, host, port("udp", "tcp"), "dgram", o({proto = "udp"}))
T("exchange udp closed", comm.exchange, host, port("udpclosed", "udp"), "dgram", o())
T("exchange ssl", comm.exchange, host, port("tls"), "x", o({proto = "ssl"}))
T("exchange number port", comm.exchange, "127.0.0.1", PORTS.echo, "x", o())
T("exchange number port is tcp", comm.exchange, "127.0.0.1", PORTS.udp, "x", o())
local st, err = comm.exchange(host, port("closed"), "x", o())
out[#out + 1] = "error text: " .. show(tostring(err)) .. " " .. type(err) .. " " .. #err
out[#out + 1] = "error format: " .. show(("%s"):format(err))
"""


def test_get_banner_and_exchange_match_nmap(tmp_path, ports):
    expected = compare(tmp_path, ports, BANNER_EXCHANGE)
    assert 'banner: true "hello\\x0d\\x0aworld\\x0a" n=2' in expected
    assert "banner of a closed port: false E[tryssl failed|ssl failed|Failed to connect|" \
           "Could not connect|ERROR] n=2" in expected
    assert "get_banner leaves true tcp" in expected
    assert 'exchange: true "ping\\x0a" n=2' in expected
    assert "exchange silent: nil E[Failed to read|receive failed|TIMEOUT] n=2" in expected
    assert 'error text: "The script encountered an error:\\x0a- Failed to connect:\\x0a- ' \
           'Could not connect:\\x0a- ERROR" table 3' in expected


def test_timeouts_match_nmap(tmp_path, ports):
    """How long comm waits for a silent peer: the connect timeout (from the options or
    stdnse.get_timeout(host)) plus the request timeout (from the options or 6000 ms)."""
    body = """
    local timed = {{0.2, {timeout = 300}}, {0.2, {connect_timeout = 100, request_timeout = 200}},
                   {0.2, {timeout = 300, request_timeout = 100}},
                   {0.2, {timeout = 300, connect_timeout = 100}},
                   {0.2, {request_timeout = 300}}, {0.2, {timeout = "300"}}}
    for i, case in ipairs(timed) do
      local h = {ip = "127.0.0.1", times = {timeout = case[1]}}
      local t0 = nmap.clock_ms()
      local st, err = comm.exchange(h, port("silent"), "x", case[2])
      out[#out + 1] = i .. " " .. math.floor(nmap.clock_ms() - t0) .. " " .. show(err)
      local t1 = nmap.clock_ms()
      local sock, resp = comm.opencon(h, port("silent"), "", {timeout = case[2].timeout or 300, recv_before = true})
      out[#out + 1] = i .. "o " .. math.floor(nmap.clock_ms() - t1)
    end
    """
    source = ("local PORTS = {" + ",".join(f"{k}={v}" for k, v in ports.items()) + "}\n"
              + PRELUDE + body + EPILOGUE)
    runs = {"nmap": run_lua_nmap(tmp_path, source)}
    for profile in (SEED, NMAP7):
        (tmp_path / profile.name).mkdir()
        runs[profile.name] = run_lua(tmp_path / profile.name, source, profile)
    waits = {1: 600, 2: 300, 3: 400, 4: 400, 5: 1300, 6: 600}  # ms: the host's timeout gives 1000
    for name, output in runs.items():
        lines = output.split("\n")
        for i, wait in waits.items():
            _, elapsed, err = lines[2 * (i - 1)].split(" ", 2)
            assert wait - 20 <= int(elapsed) <= wait + 400, (name, i, elapsed)
            assert err == "E[Failed to read|receive failed|TIMEOUT]", (name, i)
            opencon_ms = int(lines[2 * i - 1].split(" ")[1])
            assert 580 <= opencon_ms <= 1000, (name, i, opencon_ms)
