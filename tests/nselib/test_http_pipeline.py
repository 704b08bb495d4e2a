"""nselib/http.lua's keep-alive and pipelining (pipeline_add / pipeline_go and the old
names), SSL/TLS (tried after plain HTTP, or first on SSL ports and services, or forced by the
scheme option), and the script arguments, compared with Nmap's: the responses, and the
requests each connection carried."""
from __future__ import annotations

import importlib.util
import ssl
from pathlib import Path

from test_http import (PROFILES, HttpPeer, assert_same, assert_same_requests, both,
                       path_of, request_headers, response)

_spec = importlib.util.spec_from_file_location(
    "nsock_socket_peers_http", Path(__file__).resolve().parent.parent / "nsock" /
    "test_sockets.py")
SOCKET_PEERS = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(SOCKET_PEERS)


def echo(request, peer):
    path = path_of(request)
    body = b"" if request.startswith(b"HEAD") else path.encode()
    if path.startswith("/ka"):
        return response(headers=["Keep-Alive: timeout=5, max=3"], body=body)
    if path.startswith("/close"):
        return [response(headers=["Connection: close"], body=body), None]
    if path.startswith("/old"):
        return [response(body=body, version="HTTP/1.0"), None]
    if path.startswith("/post"):
        return response(body=body + b" " + request.split(b"\r\n\r\n", 1)[1])
    if path.startswith("/garbage"):
        return b"garbage\r\n\r\n"
    return response(body=body)


def pipeline_peers():
    return {"PEER": HttpPeer(echo)}


PIPELINE_BODY = r"""
local function R(label, responses)
  if type(responses) ~= "table" then P(label, responses) return end
  local lines = {}
  for i, r in ipairs(responses) do
    lines[i] = table.concat({tostring(r.status), tostring(r.body), tostring(r.ssl),
                             tostring(r.header and r.header["content-length"])}, " ")
  end
  P(label, #responses, lines)
end
local all
for i = 1, 50 do all = http.pipeline_add("/p" .. i, nil, all) end
all = http.pipeline_add("/head", nil, all, "HEAD")
all = http.pipeline_add("/post", {content = "abc"}, all, "POST")
all = http.pipeline_add("/post-empty", nil, all, "POST")
all = http.pipeline_add("/header", {header = {X = "y"}}, all)
R("many", http.pipeline_go(H, PEER, all))
all = nil
for i = 1, 8 do all = http.pipeline_add("/ka" .. i, nil, all) end
R("keep-alive max", http.pipeline_go(H, PEER, all))
all = nil
for i = 1, 4 do all = http.pipeline_add("/close" .. i, nil, all) end
R("connection close", http.pipeline_go(H, PEER, all))
all = nil
for i = 1, 3 do all = http.pipeline_add("/old" .. i, nil, all) end
R("HTTP/1.0", http.pipeline_go(H, PEER, all))
local one = http.pipeline_add("/one", {header = {A = "b"}})
P("a set", one)
P("same set", http.pipeline_add("/two", nil, one, "PUT") == one)
R("two", http.pipeline_go(H, PEER, one))
R("empty", http.pipeline_go(H, PEER, {}))
R("nil", http.pipeline_go(H, PEER, nil))
R("refused", http.pipeline_go(H, CLOSED, http.pipeline_add("/x")))
R("garbage first", http.pipeline_go(H, PEER, http.pipeline_add("/garbage")))
P("pGet", http.pGet(H, PEER, "/pg", nil, nil, nil))
P("pHead", http.pHead(H, PEER, "/ph", nil, nil, nil))
P("addPipeline", http.addPipeline(H, PEER, "/ap", nil, nil, nil, "DELETE"))
R("pipeline", http.pipeline(H, PEER, http.pGet(H, PEER, "/old-api")))
"""


def with_closed(make):
    import socket

    def wrapped():
        peers = make()
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        number = closed.getsockname()[1]
        closed.close()

        class Closed:
            port = number

            def close(self):
                pass
        peers["CLOSED"] = Closed()
        return peers
    return wrapped


@PROFILES
def test_pipelining_matches_nmap(tmp_path, profile):
    (expected, nmap_peers), (ours, our_peers) = both(tmp_path, with_closed(pipeline_peers),
                                                     PIPELINE_BODY, profile)
    assert_same(expected, ours)
    assert_same_requests(nmap_peers["PEER"], our_peers["PEER"])
    requests = our_peers["PEER"].requests
    first = [number for number, r in requests if path_of(r).startswith("/p")]
    assert first.count(first[0]) == 40  # one burst of 40 on the first connection
    connection = {path_of(r): request_headers(r)["Connection"] for _, r in requests}
    assert connection["/p1"] == "keep-alive" and connection["/p40"] == "close"
    assert connection["/ka4"] == "close" and connection["/close2"] == "close"


# --------------------------------------------------------------------------------------------
# SSL/TLS.

def tls_context(directory: Path) -> ssl.SSLContext:
    cert, key, _ = SOCKET_PEERS.make_certificate(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def ssl_peers(directory):
    def make():
        return {"TLS": HttpPeer(echo, tls=tls_context(directory), idle=3.0),
                "PLAIN": HttpPeer(echo, idle=3.0)}
    return make


SSL_BODY = r"""
local function S(label, r) P(label, r.status, r.ssl, r.body, r["status-line"]) end
S("tls, plain first", http.get(H, TLS, "/a", {timeout = 2000}))
S("tls, https service", http.get(H, {number = TLS, protocol = "tcp", service = "https"}, "/b",
                                  {timeout = 2000}))
S("tls, ssl tunnel", http.get(H, {number = TLS, protocol = "tcp", service = "http",
                                  version = {service_tunnel = "ssl"}}, "/c", {timeout = 2000}))
S("plain, https service", http.get(H, {number = PLAIN, protocol = "tcp", service = "https"},
                                   "/d", {timeout = 1000}))
S("tls, scheme https", http.get(H, TLS, "/e", {scheme = "https", timeout = 2000}))
S("plain, scheme https", http.get(H, PLAIN, "/f", {scheme = "https", timeout = 1000}))
S("plain, scheme http", http.get(H, PLAIN, "/g", {scheme = "http", timeout = 1000}))
S("tls, scheme http", http.get(H, TLS, "/h", {scheme = "http", timeout = 1000}))
S("tls url", http.get_url("https://127.0.0.1:" .. TLS .. "/i", {timeout = 2000}))
S("tls post", http.post(H, TLS, "/post", {timeout = 2000}, nil, "x=1"))
"""


@PROFILES
def test_ssl_matches_nmap(tmp_path, profile):
    (expected, nmap_peers), (ours, our_peers) = both(tmp_path, ssl_peers(tmp_path), SSL_BODY,
                                                     profile)
    assert_same(expected, ours)
    for name in ("TLS", "PLAIN"):
        assert_same_requests(nmap_peers[name], our_peers[name])
    assert nmap_peers["TLS"].handshakes == our_peers["TLS"].handshakes
    # Plain HTTP first on an unknown port (the TLS server sees a failed handshake), then TLS;
    # SSL first for an https service or an SSL tunnel.
    assert our_peers["TLS"].handshakes[:4] == ["fail", "ok", "ok", "ok"]
    assert "tls, plain first (4)\n200\n  --\ntrue" in ours


# --------------------------------------------------------------------------------------------
# Script arguments.

ARGS_BODY = r"""
local r = http.get(H, PEER, "/big")
P("get", r.status, r.body and #r.body, r.truncated, http.USER_AGENT)
P("explicit options win", (function()
  local r = http.get(H, PEER, "/big", {max_body_size = 5000, bypass_cache = true})
  return r.status, r.body and #r.body, r.truncated
end)())
local all
for i = 1, 5 do all = http.pipeline_add("/p" .. i, nil, all) end
local rs = http.pipeline_go(H, PEER, all)
P("pipeline", #rs, rs[1].body)
"""


def args_peers():
    def answer(request, peer):
        if path_of(request) == "/big":
            return response(body=b"y" * 3000)
        return response(body=path_of(request).encode())
    return {"PEER": HttpPeer(answer)}


@PROFILES
def test_script_arguments_match_nmap(tmp_path, profile):
    args = {"http.useragent": "TestUA/1.0", "http.host": "forced.example",
            "http.max-body-size": "1000", "http.truncated-ok": "true", "http.pipeline": "2"}
    (expected, nmap_peers), (ours, our_peers) = both(tmp_path, args_peers, ARGS_BODY, profile,
                                                     args)
    assert_same(expected, ours)
    assert_same_requests(nmap_peers["PEER"], our_peers["PEER"])
    sent = request_headers(our_peers["PEER"].requests[0][1])
    assert sent["Host"] == "forced.example" and sent["User-Agent"] == "TestUA/1.0"
