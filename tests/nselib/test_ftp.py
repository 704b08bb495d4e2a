"""nselib/ftp.lua against real FTP servers on 127.0.0.1, in both API profiles, compared with
Nmap's own ftp library running the same Lua.

This file also holds the small line servers and the nmap runner the other nselib tests of
this batch (smtp, sslcert, brute, creds, unpwdb) import.
"""
from __future__ import annotations

import importlib.util
import random
import shutil
import socket
import ssl
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from nse_support import _lua_check_source, run_lua
from tcp_peer import TcpServer, close_quietly, read_line

from worker.nse.profile import NMAP7, SEED

PROFILES = pytest.mark.parametrize("profile", [SEED, NMAP7], ids=["seed", "nmap7"])

_spec = importlib.util.spec_from_file_location(
    "nsock_peers_for_nselib", Path(__file__).resolve().parent.parent / "nsock" / "test_sockets.py")
_peers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_peers)
make_certificate = _peers.make_certificate
closed_port = _peers.closed_port

# Lua prelude: P(...) appends one line showing its arguments (strings quoted).
PRELUDE = r'''
local out = {}
local function show(v)
  if type(v) == "string" then
    return (("%q"):format(v):gsub("\\\n", "\\n"):gsub("[\128-\255]", function(c)
      return "\\" .. c:byte()
    end))
  end
  if type(v) == "userdata" or (type(v) == "table" and v.connect and v.receive) then
    return "socket"
  end
  return tostring(v)
end
local function P(...)
  local t = table.pack(...)
  for i = 1, t.n do t[i] = show(t[i]) end
  out[#out + 1] = table.concat(t, " | ")
end
'''
EPILOGUE = '\nreturn table.concat(out, "\\n")\n'


def nmap_lua(tmp_path: Path, body: str, args: str | None = None, extra=(), timeout=180) -> str:
    """``body`` as a prerule action under the installed nmap with its own nselib (the
    reference), with optional --script-args."""
    nmap = shutil.which("nmap")
    if nmap is None:
        raise AssertionError("nmap is required (Debian package nmap; .ci/setup installs it)")
    script = tmp_path / "ref-check.nse"
    script.write_text(_lua_check_source(body))
    xml_path = tmp_path / "ref-check.xml"
    command = [nmap, "--unprivileged", "-d", "-n", "--script", str(script), "-oX", str(xml_path),
               *extra]
    if args:
        command += ["--script-args", args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    for element in ET.parse(xml_path).getroot().iter("script"):
        if element.get("id") == "ref-check":
            return element.get("output")
    raise AssertionError(f"nmap gave no output:\n{done.stdout[-4000:]}\n{done.stderr}")


def args_dict(args: str | None) -> dict:
    """The --script-args text as our engine's script_args mapping (simple k=v,k=v only)."""
    result = {}
    for part in filter(None, (args or "").split(",")):
        key, _, value = part.partition("=")
        result[key] = value
    return result


def ours(tmp_path: Path, body: str, profile=SEED, args: str | None = None, **options) -> str:
    directory = tmp_path / f"ours-{profile.name}-{random.randrange(1 << 30)}"
    directory.mkdir()
    return run_lua(directory, body, profile, script_args=args_dict(args), **options)


# -- servers -----------------------------------------------------------------------------------

class Conn:
    """One accepted connection: line reading, sending, switching to TLS."""

    def __init__(self, sock, server):
        self.sock, self.server, self.buffer = sock, server, bytearray()

    def send(self, data: bytes, bytewise=False):
        if bytewise:
            for i in range(len(data)):
                self.sock.sendall(data[i:i + 1])
                time.sleep(0.002)
        else:
            self.sock.sendall(data)

    def line(self) -> str | None:
        text = read_line(self.sock, self.buffer)
        if text is not None:
            self.server.commands.append(text)
        return text

    def tls(self):
        self.sock = self.server.own(self.server.context.wrap_socket(self.sock, server_side=True))

    @property
    def is_tls(self):
        return isinstance(self.sock, ssl.SSLSocket)


class LineServer(TcpServer):
    """A TCP server on 127.0.0.1: ``handler(conn)`` runs in a thread per connection.
    ``implicit_tls`` wraps every connection in TLS first. Every command line is recorded in
    ``commands``; ``connections`` counts accepted connections."""

    def __init__(self, handler, directory: Path, implicit_tls=False):
        self.line_handler, self.implicit_tls = handler, implicit_tls
        self.commands: list[str] = []
        cert, key, _ = make_certificate(directory)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        super().__init__("127.0.0.1", 0, self._serve, backlog=64)

    def _serve(self, sock):
        sock.settimeout(30)
        if self.implicit_tls:
            sock = self.own(self.context.wrap_socket(sock, server_side=True))
        conn = Conn(sock, self)
        try:
            self.line_handler(conn)
        finally:
            close_quietly(conn.sock)  # the TLS socket, if any

    def wait(self, seconds):
        self.stopping.wait(seconds)


@pytest.fixture
def servers(tmp_path):
    started: list[LineServer] = []

    def start(handler, implicit_tls=False) -> LineServer:
        server = LineServer(handler, tmp_path, implicit_tls)
        started.append(server)
        return server
    yield start
    for server in started:
        server.close()


# -- an FTP server -----------------------------------------------------------------------------

def ftp_handler(banner=b"220 Test FTP ready\r\n", bytewise=False, allow_tls=True,
                allow_pasv=True):
    def handler(conn: Conn):
        conn.send(banner, bytewise)
        user = None
        while True:
            line = conn.line()
            if line is None:
                return
            command, _, argument = line.partition(" ")
            command = command.upper()
            if command == "USER":
                user = argument
                if argument == "deny":
                    conn.send(b"530 Denied.\r\n", bytewise)
                elif argument == "tlsonly" and not conn.is_tls:
                    conn.send(b"530 Please login with USER and PASS over TLS.\r\n", bytewise)
                elif argument == "nopass":
                    conn.send(b"230 Logged in without password\r\n", bytewise)
                else:
                    conn.send(b"331 Password required for " + argument.encode() + b"\r\n",
                              bytewise)
            elif command == "PASS":
                if user == "acct":
                    conn.send(b"332 Need account for login.\r\n", bytewise)
                elif (user, argument) in (("admin", "secret"), ("tlsonly", "pw")):
                    conn.send(b"230-Welcome\r\n230 User logged in\r\n", bytewise)
                else:
                    conn.send(b"530 Login incorrect.\r\n", bytewise)
            elif command == "ACCT":
                conn.send(b"230 Account " + argument.encode() + b" ok\r\n", bytewise)
            elif command == "AUTH" and allow_tls:
                conn.send(b"234 AUTH TLS successful\r\n")
                conn.tls()
            elif command == "AUTH":
                conn.send(b"502 No TLS here\r\n")
            elif command == "PASV" and allow_pasv:
                data = socket.socket()
                data.bind(("127.0.0.1", 0))
                data.listen(1)
                number = data.getsockname()[1]
                conn.send(f"227 Entering Passive Mode (127,0,0,1,{number // 256},"
                          f"{number % 256}).\r\n".encode(), bytewise)

                def serve_data(listener=data):
                    listener.settimeout(10)
                    try:
                        peer, _ = listener.accept()
                        peer.sendall(b"file1\r\nfile2\r\n")
                        peer.close()
                    except OSError:
                        pass
                    listener.close()
                threading.Thread(target=serve_data, daemon=True).start()
            elif command == "PASV":
                conn.send(b"502 No passive\r\n")
            elif command == "MULTI":
                conn.send(b"211-First line\r\n continued\r\n211-second\r\n211 End\r\n", bytewise)
            elif command == "QUIT":
                conn.send(b"221 Goodbye.\r\n")
                return
            else:
                conn.send(b"502 Command not implemented.\r\n", bytewise)
    return handler


# -- tests -------------------------------------------------------------------------------------

SESSION = PRELUDE + r'''
local ftp = require "ftp"
local host = {ip = "127.0.0.1"}
local function port(n) return {number = n, protocol = "tcp"} end
for _, n in ipairs({@PLAIN, @MULTI, @IMPLICIT, @GARBAGE, @BYTEWISE}) do
  local s, code, msg, buf = ftp.connect(host, port(n), {timeout = 1000})
  P("connect", n == @PLAIN, s and "socket" or s, code, msg, type(buf))
  if s then
    P("auth", ftp.auth(s, buf, "admin", "secret"))
    ftp.close(s)
  end
end
local s, code, msg, buf = ftp.connect(host, port(@PLAIN))
s:send("MULTI\r\n") P("multi", ftp.read_reply(buf))
local data = ftp.pasv(s, buf)
P("pasv", data and "socket")
P("list", data:receive())
data:close()
s:send("BOGUS\r\n") P("bogus", ftp.read_reply(buf))
P("close", ftp.close(s))
for _, c in ipairs({{"admin", "wrong"}, {"nopass", "x"}, {"deny", "x"}, {"tlsonly", "pw"}}) do
  local s2, _, _, b2 = ftp.connect(host, port(@PLAIN))
  P("auth", c[1], ftp.auth(s2, b2, c[1], c[2]))
  ftp.close(s2)
end
local s3, _, _, b3 = ftp.connect(host, port(@PLAIN))
P("starttls", ftp.starttls(s3, b3))
P("reconnect", s3:reconnect_ssl())
P("tls-auth", ftp.auth(s3, b3, "admin", "secret"))
ftp.close(s3)
local s4, _, _, b4 = ftp.connect(host, port(@NOTLS))
P("starttls-refused", ftp.starttls(s4, b4))
P("pasv-refused", ftp.pasv(s4, b4))
ftp.close(s4)
local r = table.pack(ftp.connect(host, port(@CLOSED)))
P("refused", r[1], r[2], r.n)
'''


def start_ftp_servers(servers):
    return {
        "PLAIN": servers(ftp_handler()).port,
        "MULTI": servers(ftp_handler(
            b"220-Multi line banner\r\n220-second line\r\n 220 not the end\r\n220 done\r\n")).port,
        "IMPLICIT": servers(ftp_handler(), implicit_tls=True).port,
        "GARBAGE": servers(ftp_handler(b"garbage here\r\n")).port,
        "BYTEWISE": servers(ftp_handler(b"220-slow\r\n220 banner\r\n", bytewise=True)).port,
        "NOTLS": servers(ftp_handler(allow_tls=False, allow_pasv=False)).port,
        "CLOSED": closed_port(),
    }


def fill(body: str, ports: dict) -> str:
    for name, number in ports.items():
        body = body.replace("@" + name, str(number))
    return body


def test_session_matches_nmap(tmp_path, servers):
    body = fill(SESSION, start_ftp_servers(servers)) + EPILOGUE
    expected = nmap_lua(tmp_path, body)
    for profile in (SEED, NMAP7):
        assert ours(tmp_path, body, profile) == expected
    lines = expected.split("\n")
    assert lines[0] == '"connect" | true | "socket" | 220 | "Test FTP ready" | "function"'
    assert '"multi" | 211 | "First line\\n continued\\n211-second\\nEnd"' in lines
    assert ('"connect" | false | "socket" | nil | "Unparseable response: \\"garbage here\\"" | '
            '"function"') in lines
    assert '"auth" | "deny" | nil | 530 | "Denied."' in lines
    assert '"auth" | "tlsonly" | true | 230 | "Welcome\\nUser logged in"' in lines
    assert '"pasv-refused" | nil | "PASV failed: 502 No passive"' in lines
    assert lines[-1] == '"refused" | false | "unspecified error" | 2'


def test_acct_is_sent_when_the_server_asks(tmp_path, servers):
    # Nmap 7.93 sends the literal "ACCT %s" here and then fails; we send the account.
    server = servers(ftp_handler())
    body = PRELUDE + f'''
local ftp = require "ftp"
for _, acct in ipairs({{false, "myacct"}}) do
  local s, _, _, b = ftp.connect({{ip = "127.0.0.1"}}, {{number = {server.port}, protocol = "tcp"}})
  P(ftp.auth(s, b, "acct", "x", acct or nil))
  ftp.close(s)
end''' + EPILOGUE
    for profile in (SEED, NMAP7):
        assert ours(tmp_path, body, profile) == ('true | 230 | "Account acct ok"\n'
                                                  'true | 230 | "Account myacct ok"')
    assert "ACCT myacct" in server.commands


READ_REPLY_CASES = [
    ["220 ok"], ["220-a", "b", "220 c"], ["220-a", "221 x", "220-y", "220 c"], ["220-a"], [],
    ["22 short"], ["220"], ["220-"], ["2200 x"], ["abc def"], ["220x"], ["", "220 ok"],
    ["220-a", "", "220 end"], ["220-a", "220"], ["220 "], ["220-a", "220-b"], [" 220 x"],
    ["220\tx"], ["099 x"], ["220 multi word  spaces "], ["550-\0\255", "550 \1"],
]


def lua_string(data: bytes) -> str:
    return '"' + "".join(f"\\{b}" for b in data) + '"'


def read_reply_body(cases) -> str:
    items = ",".join("{" + ",".join(lua_string(line) for line in case) + "}" for case in cases)
    return PRELUDE + f'''
local ftp = require "ftp"
local cases = {{{items}}}
for i, lines in ipairs(cases) do
  local n = 0
  local buffer = function()
    n = n + 1
    if lines[n] then return lines[n] end
    return nil, "EOF"
  end
  P(i, ftp.read_reply(buffer))
end
P("errors", ftp.read_reply(function() return nil, "TIMEOUT" end),
  ftp.read_reply(function() return nil, "weird" end))
''' + EPILOGUE


def test_read_reply_matches_nmap_on_edge_cases_and_fuzz(tmp_path):
    rng = random.Random(7)
    fuzz = []
    for _ in range(150):  # bounded
        lines = []
        for _ in range(rng.randint(0, 4)):
            kind = rng.random()
            if kind < 0.3:
                line = bytes(rng.randrange(256) for _ in range(rng.randint(0, 12)))
            elif kind < 0.7:
                code = rng.choice([b"220", b"230", b"331", b"099", b"22", b"2200"])
                line = code + rng.choice([b" ", b"-", b"", b"\t"]) + bytes(
                    rng.choice(b"abc -0123456789\r") for _ in range(rng.randint(0, 8)))
            else:
                line = bytes(rng.choice(b"0123456789 -") for _ in range(rng.randint(0, 6)))
            lines.append(line.replace(b"\n", b""))
        fuzz.append(lines)
    cases = [[line.encode("latin-1") for line in case] for case in READ_REPLY_CASES] + fuzz
    body = read_reply_body(cases)
    expected = nmap_lua(tmp_path, body)
    assert ours(tmp_path, body) == expected
    lines = expected.split("\n")
    assert lines[1] == '2 | 220 | "a\\nb\\nc"'
    assert lines[-1] == '"errors" | nil | nil | "weird"'


def garbage_handler(seed):
    def handler(conn: Conn):
        rng = random.Random(seed)
        for _ in range(rng.randint(1, 6)):
            conn.send(bytes(rng.randrange(256) for _ in range(rng.randint(1, 40))),
                      bytewise=rng.random() < 0.3)
        if rng.random() < 0.5:
            conn.server.wait(0.5)
    return handler


@PROFILES
def test_garbage_early_close_and_silence_fail_softly(tmp_path, servers, profile):
    ports = [servers(garbage_handler(seed)).port for seed in range(12)]
    silent = servers(lambda conn: conn.server.wait(30)).port
    closer = servers(lambda conn: None).port
    half = servers(lambda conn: conn.send(b"220-partial\r\n")).port
    body = PRELUDE + f'''
local ftp = require "ftp"
local host = {{ip = "127.0.0.1"}}
for _, n in ipairs({{{",".join(map(str, ports))}, {closer}, {half}}}) do
  local ok, s, code, msg, buf = pcall(ftp.connect, host, {{number = n, protocol = "tcp"}},
                                     {{timeout = 400}})
  P(ok, s and "socket" or s, type(code), type(msg))
  if ok and s then
    local ok2, a, b, c = pcall(ftp.auth, s, buf, "admin", "secret")
    P("auth", ok2, a == true, type(b), type(c))
    local ok3, d, e = pcall(ftp.pasv, s, buf)
    P("pasv", ok3, d and "socket" or d, type(e))
    s:close()
  end
end
local t0 = nmap.clock()
local r = table.pack(ftp.connect(host, {{number = {silent}, protocol = "tcp"}}, {{timeout = 300}}))
P("silent", r[1], r[2], nmap.clock() - t0 < 5)
''' + EPILOGUE
    lines = ours(tmp_path, body, profile).split("\n")
    assert len(lines) == 15 + sum(1 for line in lines if line.startswith(('"auth"', '"pasv"')))
    for line in lines:
        assert line.startswith(("true", '"auth" | true', '"pasv" | true', '"silent"')), line
    assert lines[-1] == '"silent" | false | "unspecified error" | true'


@PROFILES
def test_reply_delivered_one_byte_at_a_time(tmp_path, servers, profile):
    port = servers(ftp_handler(b"220-one\r\n  two\r\n220 three\r\n", bytewise=True)).port
    body = PRELUDE + f'''
local ftp = require "ftp"
local s, code, msg, buf = ftp.connect({{ip = "127.0.0.1"}}, {{number = {port}, protocol = "tcp"}})
P(code, msg)
P(ftp.auth(s, buf, "admin", "secret"))
s:send("MULTI\\r\\n")
P(ftp.read_reply(buf))
ftp.close(s)''' + EPILOGUE
    assert ours(tmp_path, body, profile).split("\n") == [
        '220 | "one\\n  two\\nthree"', 'true | 230 | "Welcome\\nUser logged in"',
        '211 | "First line\\n continued\\n211-second\\nEnd"']
