"""nselib/http.lua against real HTTP peers on 127.0.0.1 (a raw socket server that sends exactly
the bytes a test gives: well-formed, malformed, chunked, compressed, slow, cut short).

Each test runs one Lua body under the installed nmap with Nmap's own http library and under
our engine in both API profiles; the response tables (dumped with sorted keys), the requests
the server received and the timings (in multiples of the timeout) must be the same.

The peer and the Lua helpers here are shared by the other test_http_*.py files."""
from __future__ import annotations

import gzip
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest
from nse_support import _lua_check_source, run_lua

from worker.nse.profile import NMAP7, SEED

PROFILES = pytest.mark.parametrize("profile", [SEED, NMAP7], ids=["seed", "nmap7"])
UA = b"Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)"


# --------------------------------------------------------------------------------------------
# The peer.

class HttpPeer:
    """A raw HTTP server on 127.0.0.1. ``respond(request, peer)`` answers each request with
    bytes, or with a list of steps: bytes to send, a number of seconds to wait, None to close.
    A None answer closes at once. Requests are kept as (connection number, bytes)."""

    def __init__(self, respond, tls: ssl.SSLContext | None = None, idle: float = 5.0):
        self.respond = respond
        self.tls = tls
        self.idle = idle
        self.requests: list[tuple[int, bytes]] = []
        self.handshakes: list[str] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.sock.close()
        with self._lock:
            for conn in self._open:
                try:
                    conn.close()
                except OSError:
                    pass

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with self._lock:
            self.connections += 1
            number = self.connections
            self._open.append(conn)
        try:
            if self.tls is not None:
                conn.settimeout(5)
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    self.handshakes.append("fail")
                    return
                self.handshakes.append("ok")
            conn.settimeout(self.idle)
            buffer = b""
            for _ in range(10000):
                request, buffer = self._next_request(conn, buffer)
                if request is None:
                    return
                self.requests.append((number, request))
                if not self._answer(conn, self.respond(request, self)):
                    return
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    @staticmethod
    def _next_request(conn, buffer):
        while b"\r\n\r\n" not in buffer:
            if len(buffer) > 1 << 20:
                return None, b""
            data = conn.recv(65536)
            if not data:
                return None, b""
            buffer += data
        head, rest = buffer.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip() or b"0")
        while len(rest) < length:
            data = conn.recv(65536)
            if not data:
                return None, b""
            rest += data
        return head + b"\r\n\r\n" + rest[:length], rest[length:]

    @staticmethod
    def _answer(conn, answer) -> bool:
        if answer is None:
            return False
        steps = [answer] if isinstance(answer, bytes) else answer
        for step in steps:
            if step is None:
                return False
            if isinstance(step, (int, float)):
                time.sleep(step)
            else:
                conn.sendall(step)
        return True

    def paths(self) -> list[str]:
        return [request_line(r).split(" ")[1] for _, r in self.requests]


def request_line(request: bytes) -> str:
    return request.split(b"\r\n", 1)[0].decode("latin-1")


def request_headers(request: bytes) -> dict[str, str]:
    head = request.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    headers = {}
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(": ")
        headers[name] = value
    return headers


def normal_requests(peer: HttpPeer) -> list[str]:
    """The requests a peer got, as text comparable across runs: request line, the header
    lines sorted (Nmap sends them in table order), the body; connections renumbered in order
    of appearance."""
    numbers: dict[int, int] = {}
    result = []
    for connection, request in peer.requests:
        numbers.setdefault(connection, len(numbers) + 1)
        head, _, body = request.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        result.append(f"[{numbers[connection]}] {lines[0]} | {sorted(lines[1:])} | {body!r}")
    return result


def response(status: str = "200 OK", headers=(), body: bytes = b"", length=True,
             version="HTTP/1.1") -> bytes:
    lines = [f"{version} {status}".encode()]
    lines += [h.encode() if isinstance(h, str) else h for h in headers]
    if length:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def path_of(request: bytes) -> str:
    return request_line(request).split(" ")[1]


# --------------------------------------------------------------------------------------------
# Running the same Lua under nmap and under our engine.

PRELUDE = r"""
local http = require "http"
local out = {}
local function show(v)
  if type(v) == "string" then
    return (string.format("%q", v):gsub("[\128-\255]", function(c)
      return string.format("\\x%02X", c:byte()) end))
  end
  return tostring(v)
end
local function key(k)
  return (tostring(k):gsub("[%c\128-\255]", function(c)
    return string.format("\\x%02X", c:byte()) end))
end
local function dump(v, indent)
  indent = indent or ""
  if type(v) ~= "table" then return show(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local lines = {}
  for _, k in ipairs(keys) do
    local value = v[k]
    if type(value) == "table" then
      lines[#lines + 1] = indent .. key(k) .. " = {\n" .. dump(value, indent .. "  ")
                          .. "\n" .. indent .. "}"
    else
      lines[#lines + 1] = indent .. key(k) .. " = " .. show(value)
    end
  end
  return table.concat(lines, "\n")
end
local function P(label, ...)
  local t = table.pack(...)
  local parts = {}
  for i = 1, t.n do parts[i] = dump(t[i], "  ") end
  out[#out + 1] = "== " .. label .. " (" .. t.n .. ")\n" .. table.concat(parts, "\n  --\n")
end
local H = "127.0.0.1"
"""
EPILOGUE = "\nreturn table.concat(out, '\\n')\n"


def lua_body(body: str, **ports: int) -> str:
    defs = "".join(f"local {name} = {number}\n" for name, number in ports.items())
    return PRELUDE + defs + body + EPILOGUE


def run_nmap(tmp_path: Path, body: str, script_args: dict | None = None,
             timeout: float = 240, debug: bool = True) -> str:
    """``body`` under the installed nmap with Nmap's own libraries (run_lua_nmap, with
    script arguments)."""
    nmap = shutil.which("nmap")
    if nmap is None:
        raise AssertionError("nmap is required (Debian package nmap; .ci/setup installs it)")
    script = tmp_path / "http-check.nse"
    script.write_text(_lua_check_source(body))
    xml_path = tmp_path / "http-check.xml"
    command = [nmap, "--unprivileged", *(["-d"] if debug else []), "-n", "--script",
               str(script), "-oX", str(xml_path)]
    if script_args:
        command += ["--script-args", ",".join(f"{k}={v}" for k, v in script_args.items())]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          cwd=tmp_path)
    for element in ET.parse(xml_path).getroot().iter("script"):
        if element.get("id") == "http-check":
            return element.get("output")
    raise AssertionError(f"nmap gave no output for the check:\n{done.stdout}\n{done.stderr}")


def run_ours(tmp_path: Path, body: str, profile, script_args: dict | None = None) -> str:
    options = {"script_args": dict(script_args)} if script_args else {}
    return run_lua(tmp_path, body, profile, name="http-check", **options)


def _mask_port(text: str, port: int, mask: str) -> str:
    """The port number where it stands alone: not the digits inside a longer number (a
    body of "0123456789" served from port 4567)."""
    return re.sub(rf"(?<!\d){port}(?!\d)", mask, text)


def normal(text: str, *peers: HttpPeer) -> str:
    for i, peer in enumerate(peers):
        text = _mask_port(text, peer.port, f"PORT{i}")
    return text


_NMAP_RUNS: dict = {}  # (body, args) -> (output, peers): one nmap run serves both profiles


def _run_with_peers(tmp_path, make_peers, body, runner, profile, script_args, mask_ports):
    peers = make_peers()
    try:
        code = lua_body(body, **{name: p.port for name, p in peers.items()})
        directory = tmp_path / runner
        directory.mkdir(exist_ok=True)
        if runner == "nmap":
            text = run_nmap(directory, code, script_args)
        else:
            text = run_ours(directory, code, profile, script_args)
    finally:
        for peer in peers.values():
            peer.close()
    return (normal(text, *peers.values()) if mask_ports else text), peers


def both(tmp_path, make_peers, body, profile, script_args=None, mask_ports=True):
    """Run ``body`` (given the peers' ports by name) under nmap and under our engine, each with
    fresh peers from ``make_peers()`` (a dict name -> HttpPeer); returns
    ((nmap output, nmap peers), (our output, our peers)), ports replaced by PORTn (unless
    ``mask_ports`` is false: for output that never names a port, but may hold the same digits).

    Nmap (a subprocess, with its own peers) runs while ours runs, and its answer is kept for
    the other profile: the bodies mostly wait on timeouts, so this halves the wall time."""
    key = (body, tuple(sorted((script_args or {}).items())))
    nmap_done: dict = {}
    worker = None
    if key not in _NMAP_RUNS:
        def run_nmap_side():
            try:
                nmap_done["result"] = _run_with_peers(tmp_path, make_peers, body, "nmap",
                                                      profile, script_args, mask_ports)
            except BaseException as error:  # re-raised in the test's thread
                nmap_done["error"] = error
        worker = threading.Thread(target=run_nmap_side, daemon=True)
        worker.start()
    try:
        ours = _run_with_peers(tmp_path, make_peers, body, "ours", profile, script_args,
                               mask_ports)
    finally:
        if worker is not None:
            worker.join(300)
    if worker is not None:
        assert not worker.is_alive(), "nmap did not finish"
        if "error" in nmap_done:
            raise nmap_done["error"]
        _NMAP_RUNS[key] = nmap_done["result"]
    return [_NMAP_RUNS[key], ours]


def assert_same(nmap_text: str, our_text: str):
    if nmap_text != our_text:
        import difflib
        diff = "\n".join(difflib.unified_diff(nmap_text.splitlines(), our_text.splitlines(),
                                              "nmap", "ours", lineterm="", n=2))
        raise AssertionError(f"differs from nmap:\n{diff}")


def assert_same_requests(nmap_peer: HttpPeer, our_peer: HttpPeer, volatile=()):
    """The same requests; each regular expression of ``volatile`` (a value that differs
    between two runs of Nmap, such as a time stamp) is masked first."""
    def text(peer):
        joined = _mask_port("\n".join(normal_requests(peer)), peer.port, "PORT")
        for pattern in volatile:
            joined = re.sub(pattern, "<volatile>", joined)
        return joined
    assert_same(text(nmap_peer), text(our_peer))


# --------------------------------------------------------------------------------------------
# Response parsing.

GZ = gzip.compress(b"hello gzip", mtime=0)
DEFLATED = zlib.compress(b"hello deflate")
BIG = b"x" * 5000

RESPONSES = {
    "/plain": response(headers=["X-Foo:  bar ", "Content-Type: text/html"], body=b"hello"),
    "/cookies": response(headers=[
        "Set-Cookie: a=b; path=/; HttpOnly",
        "Set-Cookie: c=d; Domain=x.com; expires=Wed, 09 Jun 2021 10:18:14 GMT",
        'Set-Cookie: q="quoted value"; Path=/p; secure', "Set-Cookie: e=; Max-Age=10",
        "Set-Cookie: noeq", "Set-Cookie: sp = v v ; X-Y = z=w ;;  ; Flag",
        "Set-Cookie: multi=1, other=2", "set-cookie: low=1"]),
    "/lf": b"HTTP/1.1 201 Created\nContent-Length: 1\nA: b\n\nx",
    "/mixed": [b"HTTP/1.1 200 OK\nA: 1\r\nB: 2\n\r\nx", None],  # read to the close
    "/fold": response(headers=["X-Long: a", "  b c", "\tz"], body=b"x"),
    "/nocolon": response(headers=["NoColon", "Y:1", "X-A : v", " Leading: w"], body=b"x"),
    "/dup": response(headers=["X: 1", "x: 2", "X:3"], body=b"x"),
    "/empty-values": response(headers=["X:", "Y: ", "Z: a: b"], body=b"x"),
    "/noreason": response("200", body=b"x", version="HTTP/1.0"),
    "/v09": response(body=b"x", version="HTTP/0.9"),
    "/v20": response(body=b"x", version="HTTP/2.0"),
    "/status20": response("20 OK", body=b"x"),
    "/status2000": response("2000 OK", body=b"x"),
    "/status999": response("999 Weird Thing"),
    "/twospaces": b"HTTP/1.1  200 OK\r\nContent-Length: 1\r\n\r\nx",
    "/crcr": b"HTTP/1.1 200 OK\r\r\nContent-Length: 1\r\n\r\nx",
    "/bad-lower": b"http/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
    "/bad-http2": b"HTTP/2 200 OK\r\nContent-Length: 1\r\n\r\nx",
    "/bad-tab": b"HTTP/1.1\t200\tOK\r\nContent-Length: 1\r\n\r\nx",
    "/bad-code": b"HTTP/1.1 2x0 OK\r\nContent-Length: 1\r\n\r\nx",
    "/bad-blank": b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
    "/bad-space": b"  HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
    "/bad-garbage": [b"\x00\x01garbage here\r\n\r\n", None],
    "/bad-noline": [b"garbage without a line end", None],
    "/continue": b"HTTP/1.1 100 Continue\r\nX: 1\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
                 + response(body=b"ok"),
    "/switching": b"HTTP/1.1 101 Switching\r\nUpgrade: ws\r\n\r\n" + response(body=b"x"),
    "/204": b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
    "/304": b"HTTP/1.1 304 Not Modified\r\n\r\n",
    "/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5;ext=1\r\nhello\r\n6\r\n world\r\na \r\n0123456789\r\n 3\nabc\n0\r\n\r\n",
    "/chunked-upper": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nContent-Length: 3\r\n"
                      b"\r\n2\r\nab\r\n0\r\n\r\n",
    "/chunked-other-te": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", None],
    "/chunked-gzip-te": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                        b"1\r\nx\r\n0\r\n\r\n",
    # Exactly "identity": read to the close, past Content-Length; any other value is chunked.
    "/te-identity": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nContent-Length: 1"
                     b"\r\n\r\nxyz", None],
    "/te-identity-case": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding:  Identity \r\n"
                          b"Content-Length: 1\r\n\r\nxyz", None],
    "/te-identity-chunked": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity, chunked\r\n"
                             b"Content-Length: 1\r\n\r\n3\r\nxyz\r\n0\r\n\r\n", None],
    "/chunk-trailer": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"3\r\nabc\r\n0\r\nTrailer-X: t\r\n\r\n",
    "/chunk-badhex": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
    "/chunk-short": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nhello", None],
    "/chunk-noend": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n",
    "/chunk-eof": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", None],
    "/cl-nonnumeric": response(headers=["Content-Length: abc"], body=b"xyz", length=False),
    "/cl-twice": response(headers=["Content-Length: 1", "Content-Length: 2"], body=b"xyz",
                          length=False),
    "/cl-spaces": response(headers=["Content-Length:  1 "], body=b"x", length=False),
    "/cl-short": [response(headers=["Content-Length: 100"], body=b"only this", length=False),
                  None],
    "/cl-negative": [response(headers=["Content-Length: -1"], body=b"xyz", length=False),
                     None],
    "/cl-zero": response(headers=["Content-Length: 0"], body=b"extra", length=False),
    "/until-close": [response(headers=["Connection: close"], body=b"until close",
                              length=False), None],
    "/gzip": response(headers=["Content-Encoding: gzip"], body=GZ),
    "/gzip-upper": response(headers=["Content-Encoding: GZIP"], body=GZ),
    "/identity": response(headers=["Content-Encoding: identity"], body=b"abc"),
    "/identity-gzip": response(headers=["Content-Encoding: identity, gzip"], body=GZ),
    "/deflate": response(headers=["Content-Encoding: deflate"], body=DEFLATED),
    "/x-gzip": response(headers=["Content-Encoding: x-gzip"], body=GZ),
    "/br-gzip": response(headers=["Content-Encoding: br, gzip"], body=GZ),
    "/gzip-corrupt": response(headers=["Content-Encoding: gzip"], body=b"notgz"),
    "/gzip-extra": response(headers=["Content-Encoding: gzip"], body=GZ + b"garbage"),
    "/gzip-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip"
                     b"\r\n\r\n%x\r\n" % len(GZ) + GZ + b"\r\n0\r\n\r\n",
    "/big": response(body=BIG),
    "/big-close": [response(headers=["Connection: close"], body=BIG, length=False), None],
    "/big-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1388\r\n" + BIG
                    + b"\r\n0\r\n\r\n",
    "/bomb": response(headers=["Content-Encoding: gzip"],
                      body=gzip.compress(b"z" * 100000, mtime=0)),
}

PARSE_BODY = """
local paths = {%s}
for _, p in ipairs(paths) do
  P(p, http.get(H, PEER, p, {timeout = 3000}))
end
P("head", http.head(H, PEER, "/plain"))
for _, case in ipairs{{"/big", 1000}, {"/big", 1000, true}, {"/big", 5000}, {"/big", -1},
                      {"/big", 0}, {"/big-close", 1000}, {"/big-close", 1000, true},
                      {"/big-chunked", 1000}, {"/big-chunked", 1000, true}, {"/bomb", 1000},
                      {"/bomb", 1000, true}, {"/bomb", -1}} do
  local r = http.get(H, PEER, case[1], {max_body_size = case[2], truncated_ok = case[3],
                                        bypass_cache = true})
  P(case[1] .. " max=" .. case[2] .. " ok=" .. tostring(case[3]), r.status,
    r["status-line"], r.body and #r.body, r.truncated, r.decoded, r.incomplete and
    r.incomplete.body and #r.incomplete.body, r.incomplete and r.incomplete.truncated)
end
""" % ", ".join(f'"{p}"' for p in RESPONSES if not p.startswith("/big") and p != "/bomb")


def parse_peers():
    return {"PEER": HttpPeer(lambda request, peer: RESPONSES.get(path_of(request),
                                                                 response("404 NF")))}


@PROFILES
def test_response_tables_match_nmap(tmp_path, profile):
    (expected, _), (ours, _) = both(tmp_path, parse_peers, PARSE_BODY, profile)
    assert_same(expected, ours)
    # Some of what the comparison covers, spelled out.
    assert 'x-long = "a b c z"' in ours
    assert "Error parsing status-line" in ours
    assert "Chunk size not received; EOF" in ours
    assert "Corrupted Content-Encoding: gzip" in ours
    assert 'content-encoding = "x, gzip"' in ours
    assert "Decoded response body too large" in ours


# --------------------------------------------------------------------------------------------
# What is sent.

SEND_BODY = r"""
local function S(label, r) P(label, r.status, r.body) end
S("head", http.head(H, PEER, "/head"))
S("post", http.post(H, PEER, "/post", nil, nil, "a=1&b=2"))
S("post-table", http.post(H, PEER, "/post-table", nil, nil,
                          {k = "a-b_c.d!e~f*g'h(i)j/k:l+m=n?o@p%q\"r<s>t 1"}))
S("post-array", http.post(H, PEER, "/post-array", nil, nil, {"x", "y"}))
S("post-empty", http.post(H, PEER, "/post-empty", nil, nil, nil))
S("put", http.put(H, PEER, "/put", nil, "putdata"))
P("put-nil", http.put(H, PEER, "/put-nil", nil, nil))
S("generic", http.generic_request(H, PEER, "OPTIONS", "/generic",
                                  {header = {["X-A"] = "1", Host = "myhost"}}))
S("generic-post", http.generic_request(H, PEER, "POST", "/generic-post"))
S("generic-table", http.generic_request(H, PEER, "POST", "/generic-table",
                                        {content = {k = "v"}}))
S("lower-method", http.generic_request(H, PEER, "get", "/lower-method"))
S("delete", http.generic_request(H, PEER, "DELETE", "/delete"))
S("cookie-string", http.get(H, PEER, "/cookie-string", {cookies = "a=b; c=d"}))
S("cookie-table", http.get(H, PEER, "/cookie-table",
                           {cookies = {{name = "x", value = "y"}, {name = "p", value = "q",
                                                                  path = "/"}}}))
S("basic", http.get(H, PEER, "/basic", {auth = {username = "user", password = "pa:ss"}}))
S("content", http.get(H, PEER, "/content", {content = "abc"}))
S("content-empty", http.get(H, PEER, "/content-empty", {content = ""}))
S("targetname", http.get({ip = H, targetname = "example.com"},
                         {number = PEER, protocol = "tcp"}, "/targetname"))
S("rdns", http.get({ip = H, name = "rdns.example"}, {number = PEER, protocol = "tcp"},
                   "/rdns"))
S("headers", http.get(H, PEER, "/headers", {header = {["User-Agent"] = "me",
                                                       Connection = "keep-alive"}}))
S("header-case", http.get(H, PEER, "/header-case", {header = {["content-type"] = "x/y",
                                                               host = "lower"}}))
S("spaces", http.get(H, PEER, "/sp ace?x=1 2"))
S("fragment", http.get(H, PEER, "/f#frag"))
S("url", http.get_url("http://127.0.0.1:" .. PEER .. "/url?y=1#frag"))
S("url-localhost", http.get_url("http://localhost:" .. PEER .. "/url-localhost",
                                {header = {X = "1"}}))
S("url-nopath", http.get_url("http://127.0.0.1:" .. PEER))
S("url-userinfo", http.get_url("http://u:p@127.0.0.1:" .. PEER .. "/url-userinfo"))
"""


def echo_peers():
    def answer(request, peer):
        return response(body=b"" if request.startswith(b"HEAD") else path_of(request).encode())
    return {"PEER": HttpPeer(answer)}


@PROFILES
def test_requests_sent_match_nmap(tmp_path, profile):
    (expected, nmap_peers), (ours, our_peers) = both(tmp_path, echo_peers, SEND_BODY, profile)
    assert_same(expected, ours)
    assert_same_requests(nmap_peers["PEER"], our_peers["PEER"])
    sent = {path_of(r): r for _, r in our_peers["PEER"].requests}
    assert request_headers(sent["/post-table"])["Content-Type"] == \
        "application/x-www-form-urlencoded"
    assert sent["/post-table"].endswith(
        b"k=a-b_c.d%21e~f%2Ag%27h%28i%29j%2Fk%3Al%2Bm%3Dn%3Fo%40p%25q%22r%3Cs%3Et%201")
    assert request_headers(sent["/basic"])["Authorization"] == "Basic dXNlcjpwYTpzcw=="
    assert request_headers(sent["/targetname"])["Host"] == f"example.com:{our_peers['PEER'].port}"
    assert request_headers(sent["/headers"])["User-Agent"] == "me"
    assert request_headers(sent["/head"])["User-Agent"] == UA.decode()


# --------------------------------------------------------------------------------------------
# Failures and timing.

def slow_peers():
    table = {
        "/close": None,
        "/never": [2.5, None],
        "/late": [1.5, response(body=b"late")],
        "/idle-header": [b"HTTP/1.1 200 OK\r\nX: 1\r\n", 2.5, None],
        "/idle-body": [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 2.5, None],
        "/idle-until-close": [b"HTTP/1.1 200 OK\r\n\r\nabc", 2.5, None],
        "/idle-chunk": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
                        2.5, None],
        "/idle-status": [b"HTTP/1.1 2", 2.5, None],
        "/gap": [b"HTTP/1.1 200 OK\r\nX: 1\r\n", 1.3, b"Y: 2\r\nContent-Length: 2\r\n\r\n",
                 1.3, b"ok"],
        "/gap-long": [b"HTTP/1.1 200 OK\r\nX: 1\r\n", 2.5,
                      b"Y: 2\r\nContent-Length: 2\r\n\r\nok"],
        "/endless": [b"HTTP/1.1 200 OK\r\n"] + [b"X-%d: %s\r\n" % (i, b"a" * 100)
                                                 for i in range(200)] + [1.0, None],
    }
    return {"PEER": HttpPeer(lambda request, peer: table[path_of(request)], idle=8.0)}


TIMING_BODY = r"""
local stdnse = require "stdnse"
P("refused", http.get(H, CLOSED, "/x", {timeout = 1000}))
-- Each request waits in its own thread (they all wait at once), measuring its own wait; the
-- answers are printed afterwards in a fixed order.
local cases = {{"/close", 1000}, {"/never", 500}, {"/late", 1000}, {"/idle-header", 500},
               {"/idle-body", 500}, {"/idle-until-close", 500}, {"/idle-chunk", 500},
               {"/idle-status", 500}, {"/gap", 1000}, {"/gap-long", 1000}, {"/endless", 3000}}
local answers, pending = {}, #cases
local done = nmap.condvar(answers)
for i, case in ipairs(cases) do
  stdnse.new_thread(function()
    local path, timeout = case[1], case[2]
    local start = nmap.clock()
    local r = http.get(H, PEER, path, {timeout = timeout, bypass_cache = true})
    local waited = math.floor((nmap.clock() - start) * 1000 / timeout + 0.25)
    answers[i] = {path .. " waited " .. waited .. "x", r}
    pending = pending - 1
    done "signal"
  end)
end
for _ = 1, 1000 do
  if pending == 0 then break end
  done "wait"
end
for i = 1, #cases do
  if answers[i] then P(answers[i][1], answers[i][2]) else P(cases[i][1] .. " never ended") end
end
"""


def timing_peers():
    peers = slow_peers()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()

    class Closed:
        def __init__(self):
            self.port = port

        def close(self):
            pass
    peers["CLOSED"] = Closed()
    return peers


@PROFILES
def test_failures_and_timeouts_match_nmap(tmp_path, profile):
    (expected, _), (ours, _) = both(tmp_path, timing_peers, TIMING_BODY, profile)
    assert_same(expected, ours)
    assert '"Error creating socket."' in ours
    assert "/gap waited" in ours and "/gap-long waited 2x" in ours


# --------------------------------------------------------------------------------------------
# Redirects.

REDIRECTS = {
    "/r1": "301 Moved|/r2", "/r2": "302 Found|http://127.0.0.1:{port}/r3?q=1#frag",
    "/loop": "302 Found|/loop", "/ext": "302 Found|http://example.invalid/",
    "/otherport": "302 Found|http://127.0.0.1:{other}/", "/https": "302 Found|https://127.0.0.1:{port}/x",
    "/abs-80": "302 Found|http://127.0.0.1/x", "/dir/rel": "302 Found|sub/x?q=1",
    "/dir/abs": "302 Found|/top?a=b#f", "/dir/proto": "302 Found|//127.0.0.1:{port}/pr?z=1",
    "/dir/dots": "302 Found|../up/./x", "/dir/qonly": "302 Found|?only=1",
    "/dir/full": "302 Found|http://127.0.0.1:{port}", "/dir/empty": "302 Found|",
    "/dir/upper": "302 Found|http://LOCALHOST:{port}/lh", "/s300": "300 X|/dest",
    "/s303": "303 X|/dest", "/s304": "304 X|/dest", "/s305": "305 X|/dest",
    "/s307": "307 X|/dest", "/s308": "308 X|/dest", "/s200": "200 X|/dest",
}


def redirect_peers():
    other = HttpPeer(lambda request, peer: response(body=b"other"))

    def answer(request, peer):
        path = path_of(request)
        if path in REDIRECTS:
            status, location = REDIRECTS[path].split("|")
            location = location.format(port=peer.port, other=other.port)
            if status.startswith("304"):
                return f"HTTP/1.1 {status}\r\nLocation: {location}\r\n\r\n".encode()
            return response(status, [f"Location: {location}"])
        body = b"" if request.startswith(b"HEAD") else path.encode()
        return response(body=body)
    # A short idle time: the TLS handshake of the https redirect is not HTTP, and the peer
    # closes after a second of it instead of five (the same close, the same answer).
    return {"PEER": HttpPeer(answer, idle=1.0), "OTHER": other}


REDIRECT_BODY = r"""
local function R(label, r)
  P(label, r.status, r.location, r.body, r["status-line"])
end
for _, p in ipairs{"/r1", "/loop", "/ext", "/otherport", "/https", "/abs-80", "/dir/rel",
                   "/dir/abs", "/dir/proto", "/dir/dots", "/dir/qonly", "/dir/full",
                   "/dir/empty", "/s300", "/s303", "/s304", "/s305", "/s307", "/s308",
                   "/s200"} do
  R(p, http.get(H, PEER, p))
end
R("upper", http.get({ip = H, targetname = "localhost"}, PEER, "/dir/upper"))
R("no-redirect", http.get(H, PEER, "/r1", {redirect_ok = false, bypass_cache = true}))
R("post", http.post(H, PEER, "/r1", nil, nil, "x"))
R("head", http.head(H, PEER, "/r1"))
R("generic", http.generic_request(H, PEER, "GET", "/r1"))
R("again-from-cache", http.get(H, PEER, "/r1"))
local calls = {}
R("closure", http.get(H, PEER, "/loop", {bypass_cache = true, redirect_ok = function(...)
  calls[#calls + 1] = "outer " .. select("#", ...) .. " " .. type((...))
  local count = 0
  return function(u)
    count = count + 1
    calls[#calls + 1] = table.concat({"inner", type(u), tostring(u.host), tostring(u.port),
                                      tostring(u.path), tostring(u.scheme)}, " ")
    return count < 4
  end
end}))
P("calls", calls)
R("table-port", http.get({ip = H, targetname = "localhost"},
                         {number = PEER, protocol = "tcp", service = "http"}, "/loop",
                         {bypass_cache = true}))
"""


@PROFILES
def test_redirects_match_nmap(tmp_path, profile):
    (expected, nmap_peers), (ours, our_peers) = both(tmp_path, redirect_peers, REDIRECT_BODY,
                                                     profile)
    assert_same(expected, ours)
    assert_same_requests(nmap_peers["PEER"], our_peers["PEER"])
    paths = our_peers["PEER"].paths()
    assert "/r3?q=1" in paths and "/dir/sub/x?q=1" in paths and "/up/x" in paths
    assert "/dest" in paths  # 300, 303, 307 are followed
    assert our_peers["OTHER"].requests == []


# --------------------------------------------------------------------------------------------
# The cache.

def counting_peers():
    counter = iter(range(10 ** 6))

    def answer(request, peer):
        path = path_of(request)
        body = f"{path}#{next(counter)}".encode()
        if path == "/r1":
            return response("302 F", ["Location: /r2"])
        if path == "/404":
            return response("404 NF", body=body)
        return response(headers=[f"X-Length: {len(body)}"],
                        body=b"" if request.startswith(b"HEAD") else body)
    return {"PEER": HttpPeer(answer)}


CACHE_BODY = r"""
local function C(label, r) P(label, r.status, r.body, r.location and #r.location) end
local a = http.get(H, PEER, "/k")
local b = http.get(H, PEER, "/k")
C("k1", a) C("k2", b)
P("same table", a == b)
b.body = "changed"; b.header.x = "1"
C("after changing a copy", http.get(H, PEER, "/k"))
P("header of the next copy", http.get(H, PEER, "/k").header.x)
C("other options", http.get(H, PEER, "/k", {header = {X = "1"}, cookies = "a=b",
                                            auth = {username = "a", password = "b"},
                                            timeout = 1000}))
C("head", http.head(H, PEER, "/k"))
C("head again", http.head(H, PEER, "/k"))
C("get after head", http.get(H, PEER, "/k"))
C("host table, same name", http.get({ip = H}, {number = PEER, protocol = "tcp"}, "/k"))
C("targetname", http.get({ip = H, targetname = "foo"}, PEER, "/k"))
C("rdns name", http.get({ip = H, name = "zz"}, PEER, "/k"))
C("port as string", http.get(H, tostring(PEER), "/k"))
C("generic_request", http.generic_request(H, PEER, "GET", "/k"))
C("bypass", http.get(H, PEER, "/k", {bypass_cache = true}))
C("after bypass", http.get(H, PEER, "/k"))
C("no_cache", http.get(H, PEER, "/n", {no_cache = true}))
C("after no_cache", http.get(H, PEER, "/n"))
C("again", http.get(H, PEER, "/n"))
C("no_cache_body", http.get(H, PEER, "/nb", {no_cache_body = true}))
local nb = http.get(H, PEER, "/nb")
C("after no_cache_body", nb)
P("its parts", type(nb.body), type(nb.rawbody), nb.header["x-length"])
C("redirect", http.get(H, PEER, "/r1"))
C("redirect again", http.get(H, PEER, "/r1"))
C("redirect target", http.get(H, PEER, "/r2"))
C("404", http.get(H, PEER, "/404"))
C("404 again", http.get(H, PEER, "/404"))
C("query", http.get(H, PEER, "/k?"))
"""


@PROFILES
def test_cache_matches_nmap(tmp_path, profile):
    (expected, nmap_peers), (ours, our_peers) = both(tmp_path, counting_peers, CACHE_BODY,
                                                     profile)
    assert_same(expected, ours)
    assert_same_requests(nmap_peers["PEER"], our_peers["PEER"])
    # first, HEAD, GET after HEAD, targetname, rdns name, generic_request, bypass
    assert our_peers["PEER"].paths().count("/k") == 7


def test_the_cache_is_bounded_by_http_max_cache_size(tmp_path):
    def make():
        return {"PEER": HttpPeer(lambda request, peer: response(body=path_of(request).encode()
                                                                * 100))}
    body = r"""
for round = 1, 2 do
  for i = 1, 6 do http.get(H, PEER, "/page" .. i) end
end
"""
    peers = make()
    try:
        run_ours(tmp_path, lua_body(body, PEER=peers["PEER"].port), SEED,
                 {"http.max-cache-size": "2500"})
        # Each body is 600 bytes (body and rawbody): four fit; the oldest went first.
        assert peers["PEER"].paths() == [f"/page{i}" for i in range(1, 7)] * 2
    finally:
        peers["PEER"].close()
    peers = make()
    try:
        run_ours(tmp_path, lua_body(body, PEER=peers["PEER"].port), SEED,
                 {"http.max-cache-size": "100000"})
        assert peers["PEER"].paths() == [f"/page{i}" for i in range(1, 7)]
    finally:
        peers["PEER"].close()


# --------------------------------------------------------------------------------------------
# Authentication.

def digest_peers():
    def answer(request, peer):
        headers = request_headers(request)
        if "Authorization" in headers:
            return response(body=b"ok")
        path = path_of(request)
        if path == "/d2":
            challenge = 'Digest realm="r@x", nonce="abc123", opaque="op", algorithm=MD5'
        elif path == "/basic-only":
            challenge = 'Basic realm="b"'
        elif path == "/open":
            return response(body=b"open")
        else:
            challenge = ('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                         'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
                         'opaque="5ccc069c403ebaf9f0171e9517f40e41"')
        return response("401 Unauthorized", [f"WWW-Authenticate: {challenge}"])
    return {"PEER": HttpPeer(answer)}


DIGEST_BODY = r"""
local function A(label, r) P(label, r.status, r.body, r["status-line"]) end
A("qop", http.get(H, PEER, "/d1?x=1", {auth = {username = "Mufasa",
                                                password = "Circle Of Life", digest = true}}))
A("no qop", http.get(H, PEER, "/d2", {auth = {username = "u", password = "p", digest = true}}))
A("post", http.post(H, PEER, "/d4", {auth = {username = "u", password = "p", digest = true}},
                    nil, "data"))
P("basic challenge", http.get(H, PEER, "/basic-only",
                              {auth = {username = "u", password = "p", digest = true}}))
P("no challenge", http.get(H, PEER, "/open",
                           {auth = {username = "u", password = "p", digest = true}}))
for _, s in ipairs{'Digest realm="t", qop="auth,auth-int", nonce="dcd", opaque="5cc", Basic realm="b"',
                   'Basic realm="b", NTLM', 'NTLM', 'Negotiate abc==', '%%%', '',
                   'Basic realm="a, b", Digest nonce=x', 'Basic realm = "sp" ,  other = val',
                   'Basic realm="x" junk', 'Basic realm="unterminated', 'A, B, C',
                   'A b=c, d=e, F g="h"', 'digest REALM="x\\"y"', 'Basic realm=x,'} do
  P("www-authenticate " .. s, http.parse_www_authenticate(s))
end
"""


def digest_fields(header: str) -> dict[str, str]:
    assert header.startswith("Digest ")
    return {name: quoted or bare for name, quoted, bare in
            re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]*))', header[len("Digest "):])}


def check_digest(header: str, password: str, method: str, with_qop: bool):
    import hashlib

    def md5(text):
        return hashlib.md5(text.encode()).hexdigest()
    fields = digest_fields(header)
    ha1 = md5(f"{fields['username']}:{fields['realm']}:{password}")
    ha2 = md5(f"{method}:{fields['uri']}")
    if with_qop:
        expected = md5(f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")
    else:
        expected = md5(f"{ha1}:{fields['nonce']}:{ha2}")
    assert fields["response"] == expected
    assert fields["qop"] == "auth" and fields["nc"] == "00000001"
    assert re.fullmatch(r"[0-9a-f]{16}", fields["cnonce"])
    assert "opaque" not in fields


@PROFILES
def test_digest_and_challenges_match_nmap(tmp_path, profile):
    (expected, nmap_peers), (ours, our_peers) = both(tmp_path, digest_peers, DIGEST_BODY,
                                                     profile)
    assert_same(expected, ours)
    for peers in (nmap_peers, our_peers):
        sent = [(path_of(r), request_headers(r).get("Authorization"), r)
                for _, r in peers["PEER"].requests]
        assert [p for p, _, _ in sent] == ["/d1?x=1", "/d1?x=1", "/d2", "/d2", "/d4", "/d4",
                                           "/basic-only", "/open"]
        assert [a is not None for _, a, _ in sent] == [False, True, False, True, False, True,
                                                       False, False]
        check_digest(sent[1][1], "Circle Of Life", "GET", True)
        check_digest(sent[3][1], "p", "GET", False)
        assert "algorithm=MD5" in sent[3][1]
        check_digest(sent[5][1], "p", "POST", True)
        assert sent[4][2].endswith(b"data") and sent[5][2].endswith(b"data")
        order = [part.split("=")[0] for part in sent[3][1][len("Digest "):].split(", ")]
        assert order == ["username", "realm", "nonce", "uri", "algorithm", "response", "qop",
                         "nc", "cnonce"]
