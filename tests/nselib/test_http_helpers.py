"""nselib/http.lua's helpers, compared with Nmap's: status strings, dates, pattern search,
tag patterns, forms, the 404 fingerprint and detection, HEAD detection, redirect parsing and
rules, the site map kept in the registry, and the module's own names."""
from __future__ import annotations

import pytest
from test_http import (PROFILES, HttpPeer, assert_same, assert_same_requests, both,
                       path_of, response)

PURE_BODY = r"""
-- The module's names.
local names = {}
for k, v in pairs(http) do names[#names + 1] = k .. ":" .. type(v) end
table.sort(names)
P("names", names)
P("name", http._NAME, http._M == http, http.USER_AGENT)

for _, data in ipairs{{status = 200, ["status-line"] = "HTTP/1.1 200 OK\r\n"}, {status = 404},
                      {["status-line"] = "Error creating socket."}, {status = 999}, {},
                      {status = 200, ["status-line"] = "HTTP/1.1 200 OK Fine\r\n"},
                      {["status-line"] = "HTTP/1.1  200  OK  \r\n"},
                      {["status-line"] = "HTTP/1.1\t200 OK\n"},
                      {["status-line"] = "HTTP/1.1 200 OK\r\n\r\n"}, {["status-line"] = ""},
                      {["status-line"] = " x"}, {["status-line"] = "garbage"}} do
  P("status string " .. tostring(data["status-line"]) .. " " .. tostring(data.status),
    http.get_status_string(data))
end
P("status string nil", http.get_status_string(nil))

for _, d in ipairs{"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                   "Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 08:49:37 +0000", "garbage",
                   "Sun, 32 Nov 1994 08:49:37 GMT", "Mon, 6 Nov 1994 8:49:37 GMT",
                   "Sunday, 06-Nov-20 08:49:37 GMT", "Sunday, 06-Nov-69 08:49:37 GMT",
                   "Sun, 06 Foo 1994 08:49:37 GMT", " Sun, 06 Nov 1994 08:49:37 GMT ",
                   "Sun, 06 Nov 1994 08:49:37 UTC", "Sun Nov 06 08:49:37 1994",
                   "Sun, 06 nov 1994 08:49:37 GMT", "Xyz, 06 Nov 1994 08:49:37 GMT",
                   "Sun, 06 Nov 94 08:49:37 GMT", "Sun, 06 Nov 1994 08:49 GMT",
                   "Sun,06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-1994 08:49:37 GMT",
                   "Sun Nov  6 08:49:37 1994 GMT", "Sun, 06 Nov 1994 08:49:37 GMT extra",
                   "Sun, 06 Nov 1994 08:49:37  GMT", "Sun, 6 Nov 1994 08:49:37 gmt",
                   "Sun, 06 Nov 19945 08:49:37 GMT", "Sun, 06 Nov 1 08:49:37 GMT",
                   "Sun, 006 Nov 1994 008:49:37 GMT", "Sun Nov  6 08:49:37 1994xyz",
                   "Sun Nov   6 08:49:37 1994", "Sun Nov 6 8:49:37 1994",
                   "Sunday, 6-Nov-94 8:4:3 GMT", "Sun, 06 November 1994 08:49:37 GMT",
                   "1Sun, 06 Nov 1994 08:49:37 GMT", ", 06 Nov 1994 08:49:37 GMT",
                   "Sun Nov 06 08:49:37 94"} do
  P("date " .. d, http.parse_date(d))
end

local resp = {status = 200, rawheader = {"Content-Type: text/html", "X: Hello World abc1", ""},
              header = {["content-type"] = "text/html", x = "Hello World abc1"},
              body = "<html>Hello WORLD foo123 abc2 %D</html>"}
for _, case in ipairs{{"hello"}, {"hello", true}, {"foo(%d+)"}, {"Hello (W%a+)", true},
                      {"nomatch"}, {"text/html"}, {"x: hello"}, {"(foo)(%d)(%d)"},
                      {"abc(%d)"}, {"%D"}, {"ABC2"}, {"ABC2", true}, {"()html"}} do
  P("contains " .. case[1] .. " " .. tostring(case[2]),
    http.response_contains(resp, case[1], case[2]))
end
P("contains, no body", http.response_contains({rawheader = {}}, "a"))

for _, case in ipairs{{"a"}, {"script", "/script"}, {"a", "b"}, {"h-1"}, {"A1"}} do
  P("tag " .. case[1], http.tag_pattern(case[1], case[2]))
end

local page = [[<html><body>
<FORM action="/login.php" method=POST id='F1' enctype="multipart/form-data">
 <input type="text" name="user" value="bob">
 <INPUT TYPE=PASSWORD NAME=pass>
 <input type="hidden" name='tok' value='x y'>
 <input type="submit">
 <textarea name="ta">hello</textarea>
 <select name="s"><option value="1">One</option></select>
 <input type=checkbox name=cb checked value=on>
 <input name="noType" value="a&amp;b">
 <input name="" value="2"><input value="3">
 <input name="a"value="b"type="c">
</form>
<form><input name=a></form>
<form action=a/b?c=d&e=f method="Get"><input type="text" name="q" value=""/></form>
<form
action = "multi
line" METHOD = "Post" ><TEXTAREA name=t2></TEXTAREA><textarea>no</textarea></Form >
<formx>a</form><form b><form c></form>
<form unclosed>]]
local forms = http.grab_forms(page)
P("forms", forms)
for i, form in ipairs(forms) do P("form " .. i, http.parse_form(form)) end
P("form of nothing", http.parse_form("<div>no form</div>"), http.grab_forms(nil),
  http.grab_forms(""))

local function hex(s)
  return s and (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) or "nil"
end
for _, s in ipairs{"", "a", "1", "12:34", "/x/y", "a\nb", "<html>No numbers here</html>",
                   "The page /abc/def.html was not found at 12:34:56 on 2020-01-01 id=123456",
                   "a/b c", "x /a<b y", "x /a\nb y", "x 2020/01/01 y", "x 01-02-2020 y",
                   "x 1/2/2020 y", "x 01.02.2020 y", "x 2020-1-1 y", "x 20-01-01 y",
                   "x 20200101 y", "x 1:23:45 y", "x 12:34:5 y", "x 123:45 y", "x 12:345 y",
                   "x 12:34:56.789 y", "x 12:34pm y", "x 99:99 y", "x 2020-01-011 y",
                   "x 02020-01-01 y", "x 2020-001-01 y", "x 111-11-11 y", "x 11/11/11 y",
                   "x pm y", "x spam y", "x name y", "x PM y", "x 12:34 Pm y",
                   "x 1234567 y", "x 12345678901 y", "x 12-34-56 y", "x 1234-56 y",
                   "x 12345 y", "x 0.123s y", "x/ y", "/", "a\tb/c d"} do
  P("clean " .. s, hex(http.clean_404(s)))
end
P("clean nil", http.clean_404(nil))

local known = http.clean_404("soft")
local matrix = {}
for _, status in ipairs{200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 405, 500, 503, 999} do
  local row = {}
  for _, r404 in ipairs{404, 200, 403, 302, 500, 401} do
    for _, all in ipairs{false, true} do
      local soft = {status = status, body = "soft", header = {}, rawheader = {}}
      local other = {status = status, body = "other", header = {}, rawheader = {}}
      row[#row + 1] = r404 .. (all and "D" or "-")
                      .. (http.page_exists(soft, r404, known, "/p", all) and "T" or "F")
                      .. (http.page_exists(other, r404, known, "/p", all) and "T" or "F")
    end
  end
  matrix[#matrix + 1] = status .. ": " .. table.concat(row, " ")
end
P("page_exists", matrix, http.page_exists({}, 404, nil, "/p"))

local host = {ip = "127.0.0.1", registry = {}}
local port = {number = 8080, protocol = "tcp"}
local function resp302(location) return {status = 302, header = {location = location}} end
P("redirect relative", http.parse_redirect(host, port, "/a/b", resp302("c/d?x=1")))
P("redirect absolute", http.parse_redirect(host, port, "/a/b", resp302("http://other.com:81/z")))
P("redirect path", http.parse_redirect(host, port, "/a/b", resp302("/abs")))
P("redirect https", http.parse_redirect(host, 8080, "/a/b", resp302("https://127.0.0.1/y")))
P("redirect http", http.parse_redirect(host, 8080, "/a/b", resp302("http://127.0.0.1/y")))
P("redirect protocol-relative", http.parse_redirect("127.0.0.1",
  {number = 443, protocol = "tcp"}, "/", resp302("//h2/x")))
P("redirect none", http.parse_redirect(host, port, "/a/b", {status = 200, header = {}}))
P("redirect 200", http.parse_redirect(host, port, "/a/b",
  {status = 200, header = {location = "/x"}}))
P("redirect up", http.parse_redirect({ip = "127.0.0.1", targetname = "tn"}, port, "/a/",
  resp302("../up")))
local ok = http.redirect_ok(host, port, 3)
local u = {host = "127.0.0.1", port = 8080, path = "/x", scheme = "http"}
P("redirect_ok counter", ok(u), ok(u), ok(u), ok(u), ok(u))
local function rule(label, h, p, u) P("redirect_ok " .. label, http.redirect_ok(h, p, 5)(u)) end
rule("other host", host, port, {host = "example.com", port = 8080, path = "/x"})
rule("no port", host, port, {host = "127.0.0.1", path = "/x"})
rule("no port, 80", host, {number = 80, protocol = "tcp"}, {host = "127.0.0.1", path = "/x"})
rule("http on 443", host, {number = 443, protocol = "tcp"},
     {host = "127.0.0.1", port = 443, path = "/x", scheme = "http"})
rule("targetname", {ip = "127.0.0.1", targetname = "foo.example.com"}, port,
     {host = "foo.example.com", port = 8080, path = "/x"})
rule("subdomain", {ip = "127.0.0.1", targetname = "example.com"}, port,
     {host = "www.example.com", port = 8080, path = "/x"})
rule("ip for targetname", {ip = "127.0.0.1", targetname = "foo.example.com"}, port,
     {host = "127.0.0.1", port = 8080, path = "/x"})
rule("rdns name", {ip = "127.0.0.1", name = "rdns.example.com"}, port,
     {host = "rdns.example.com", port = 8080, path = "/x"})
rule("port string", host, port, {host = "127.0.0.1", port = "8080", path = "/x"})
rule("no host", host, port, {port = 8080, path = "/x"})
rule("ftp", host, port, {host = "127.0.0.1", port = 8080, path = "/x", scheme = "ftp"})
rule("case", {ip = "127.0.0.1", targetname = "Foo.COM"}, port,
     {host = "foo.com", port = 8080, path = "/x"})
rule("name string", "foo.com", port, {host = "foo.com", port = 8080, path = "/x"})

local site = {ip = "10.0.0.1", targetname = "tn.example", registry = {}}
P("save_path returns", http.save_path(site, {number = 81, protocol = "tcp"},
                                      "/dir/page.php?x=1&y=2", 200, {"/a", "/b"}, {"/c"},
                                      "text/html"))
http.save_path(site, {number = 81, protocol = "tcp"}, "/dir/", 301)
http.save_path(site, {number = 81, protocol = "tcp"}, "/dir/page.php?x=3", 200)
http.save_path(site, {number = 81, protocol = "tcp"}, "http://tn.example:81/full/url.html", 200)
http.save_path(site, {number = 81, protocol = "tcp"}, "rel.html", nil, nil, nil,
               "text/plain; charset=utf-8")
http.save_path(site, {number = 81, protocol = "tcp"}, "/dir/page.php?x=1&y=2", 200, {"/a", "/z"})
http.save_path("10.0.0.2", 82, "/str", 200)
P("site map", nmap.registry["tn.example"], nmap.registry["10.0.0.2"])
"""


def no_peers():
    return {}


CLEAN_BODY = r"""
local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
return hex(http.clean_404("x 12:34:56 /path y")) .. " " .. hex(http.clean_404(""))
"""


@PROFILES
def test_clean_404_is_an_md5_unless_debugging(tmp_path, profile):
    """Without -d the fingerprint is the MD5 of the cleaned page; with -d (the comparisons
    above) Nmap gives the cleaned text instead."""
    import hashlib

    from test_http import run_nmap, run_ours
    body = 'local http = require "http"\n' + CLEAN_BODY
    expected = " ".join(hashlib.md5(t).hexdigest() for t in (b"x   y", b""))
    assert run_ours(tmp_path, body, profile) != expected  # debugging 1 in run_lua
    from nse_support import run_lua
    assert run_lua(tmp_path, body, profile, debugging=0) == expected
    assert run_nmap(tmp_path, body, debug=False) == expected


@PROFILES
def test_helpers_match_nmap(tmp_path, profile):
    (expected, _), (ours, _) = both(tmp_path, no_peers, PURE_BODY, profile)
    assert_same(expected, ours)
    assert '"get:function"' in ours and '"USER_AGENT:string"' in ours
    assert '"request:function"' not in ours  # Nmap 7.93 keeps request to itself


# --------------------------------------------------------------------------------------------
# 404 and HEAD detection against servers of each kind.

def detection_peers():
    import itertools

    def real(request, peer):
        path = path_of(request)
        head = request.startswith(b"HEAD")
        pages = {"/exists": response(body=b"" if head else b"ok"),
                 "/h200": response(body=b"" if head else b"ok"),
                 "/h302": response("302 OK", ["Location: http://elsewhere.invalid/"]),
                 "/h401": response("401 No"), "/h500": response("500 Err"),
                 "/": response(body=b"" if head else b"root")}
        return pages.get(path, response("404 Not Found", body=b"not found"))

    def soft(request, peer):
        body = b"<html>Sorry, " + path_of(request).encode() + b" is missing at 12:34:56</html>"
        return response(body=body)

    def counter_peer():
        count = itertools.count()
        return lambda request, peer: response(body=b"random %d" % next(count))

    def upper_404(request, peer):
        if b"Upper" in request.split(b"\r\n")[0]:
            return response("404 NF", body=b"nf")
        return response(body=b"soft")

    def folder_other(request, peer):
        if b"folder" in request.split(b"\r\n")[0]:
            return response(body=b"other")
        return response(body=b"soft")

    def upper_other(request, peer):
        if b"Upper" in request.split(b"\r\n")[0]:
            return response(body=b"upper")
        return response(body=b"soft")

    def folder_404(request, peer):
        if b"folder" in request.split(b"\r\n")[0]:
            return response("404 NF", body=b"nf")
        return response(body=b"soft")

    peers = {
        "REAL": real, "SOFT": soft, "MOVED": lambda r, p: response("302 Found",
                                                                   ["Location: /login"]),
        "ERROR": lambda r, p: response("500 Err", body=b"err"), "RANDOM": counter_peer(),
        "FORBIDDEN": lambda r, p: response("403 Forbidden", body=b"no!"),
        "UPPER404": upper_404, "FOLDEROTHER": folder_other, "UPPEROTHER": upper_other,
        "FOLDER404": folder_404, "AUTH": lambda r, p: response("401 Unauth", body=b"no"),
    }
    return {name: HttpPeer(handler) for name, handler in peers.items()}


DETECTION_BODY = r"""
local function hex(s)
  if type(s) ~= "string" then return s end
  return (s:gsub("[^%w ;.()]", function(c) return string.format("\\%02x", c:byte()) end))
end
for _, name in ipairs{"REAL", "SOFT", "MOVED", "ERROR", "RANDOM", "FORBIDDEN", "UPPER404",
                      "FOLDEROTHER", "UPPEROTHER", "FOLDER404", "AUTH"} do
  local port = PORTS[name]
  local status, result, known = http.identify_404(H, port)
  P("identify_404 " .. name, status, hex(result), hex(known))
  if status then
    local page = http.get(H, port, "/exists")
    P("page_exists " .. name, http.page_exists(page, result, known, "/exists", false),
      http.page_exists(page, result, known, "/exists", true))
    local usable, head = http.can_use_head(H, port, result, "/")
    P("can_use_head " .. name, usable, head and head.status)
  end
end
for _, path in ipairs{"/h200", "/h302", "/h401", "/h500", "/h404"} do
  local usable, head = http.can_use_head(H, PORTS.REAL, 404, path)
  P("can_use_head " .. path, usable, head and head.status)
end
P("can_use_head without a 404 status", (http.can_use_head(H, PORTS.REAL, nil, "/h200")))
P("can_use_head when 404 is 200", http.can_use_head(H, PORTS.REAL, 200, "/h200"))
P("can_use_head default path", (http.can_use_head(H, PORTS.REAL, 404)))
"""


@PROFILES
def test_404_and_head_detection_match_nmap(tmp_path, profile):
    body = "local PORTS = {}\n" + "".join(
        f"PORTS.{name} = {name}\n" for name in detection_peers_names()) + DETECTION_BODY
    (expected, nmap_peers), (ours, our_peers) = both(tmp_path, detection_peers, body, profile)
    assert_same(expected, ours)
    # The probe paths end in os.time(): Nmap runs beside ours, a second may pass between.
    for name in our_peers:
        assert_same_requests(nmap_peers[name], our_peers[name], volatile=[r"(?<=Check)\d+",
                                                                          r"(?<=check)\d+"])
    stamp_paths = [p for p in our_peers["SOFT"].paths() if "check" in p.lower()]
    assert [p.rstrip("0123456789") for p in stamp_paths] == \
        ["/nmaplowercheck", "/NmapUpperCheck", "/Nmap/folder/check"]
    assert "HTTP 404 status changed for second request (became 404)." in ours


def detection_peers_names():
    return ["REAL", "SOFT", "MOVED", "ERROR", "RANDOM", "FORBIDDEN", "UPPER404", "FOLDEROTHER",
            "UPPEROTHER", "FOLDER404", "AUTH"]


@pytest.mark.parametrize("args", [{}, {"http.max-body-size": "3"}], ids=["plain", "small"])
def test_identify_404_handles_a_server_that_fails(tmp_path, args):
    """A closed port, and a body over the limit: no Lua error, the answers Nmap gives."""
    import socket

    def make():
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        number = closed.getsockname()[1]
        closed.close()

        class Closed:
            port = number

            def close(self):
                pass
        return {"CLOSED": Closed(), "PEER": HttpPeer(lambda r, p: response(body=b"long body"))}
    body = r"""
P("closed", http.identify_404(H, CLOSED))
P("long", http.identify_404(H, PEER))
"""
    from worker.nse.profile import SEED
    (expected, _), (ours, _) = both(tmp_path, make, body, SEED, args)
    assert_same(expected, ours)
