"""nselib/smtp.lua against real SMTP servers on 127.0.0.1 (EHLO, the mail commands, AUTH
LOGIN/PLAIN/CRAM-MD5/DIGEST-MD5, STARTTLS), in both API profiles, compared with Nmap's own
smtp library running the same Lua."""
from __future__ import annotations

import base64
import hashlib
import hmac
import random

from test_ftp import (EPILOGUE, PRELUDE, PROFILES, Conn, closed_port, fill, lua_string,
                      nmap_lua, ours, servers)  # noqa: F401  (servers is a fixture)

from worker.nse.profile import NMAP7, SEED

USERS = {"admin": "secret"}
CAPS = (b"PIPELINING", b"AUTH LOGIN PLAIN CRAM-MD5 DIGEST-MD5", b"STARTTLS", b"SIZE 1000")


def digest_md5_ok(conn: Conn, challenge_fields: bytes) -> bool:
    """Check a DIGEST-MD5 answer the way a server does (RFC 2831, qop=auth)."""
    answer = base64.b64decode(conn.line()).decode()
    fields = {}
    for part in answer.split(","):
        key, _, value = part.partition("=")
        fields[key.strip()] = value.strip().strip('"')
    user, password = fields.get("username"), USERS.get(fields.get("username", ""), None)
    if password is None:
        return False

    def md5(data: bytes) -> bytes:
        return hashlib.md5(data).digest()
    a1 = (md5(f"{user}:{fields['realm']}:{password}".encode()) +
          f":{fields['nonce']}:{fields['cnonce']}".encode())
    a2 = f"AUTHENTICATE:{fields['digest-uri']}".encode()
    expected = hashlib.md5(
        f"{md5(a1).hex()}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:"
        f"{fields['qop']}:{md5(a2).hex()}".encode()).hexdigest()
    if fields.get("response") != expected:
        return False
    conn.send(b"334 " + base64.b64encode(b"rspauth=0123") + b"\r\n")
    conn.line()
    return True


def smtp_handler(banner=b"220 mail.test ESMTP ready\r\n", caps=CAPS, allow_tls=True,
                 bytewise=False, allow_auth=True):
    def handler(conn: Conn):
        conn.send(banner, bytewise)
        while True:
            line = conn.line()
            if line is None:
                return
            command, _, argument = line.partition(" ")
            command = command.upper()
            if command in ("EHLO", "LHLO"):
                lines = [b"mail.test Hello " + argument.encode(), *caps]
                conn.send(b"".join(b"250-" + x + b"\r\n" for x in lines[:-1]) + b"250 " +
                          lines[-1] + b"\r\n", bytewise)
            elif command == "HELO":
                conn.send(b"250 mail.test\r\n")
            elif command == "MAIL":
                conn.send(b"250 2.1.0 Ok\r\n")
            elif command == "RCPT":
                conn.send(b"250 2.1.5 Ok\r\n" if "known" in argument
                          else b"550 5.1.1 User unknown\r\n")
            elif command == "DATA":
                conn.send(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                while True:
                    data = conn.line()
                    if data is None or data == ".":
                        break
                conn.send(b"250 2.0.0 Ok: queued\r\n")
            elif command == "RSET":
                conn.send(b"250 2.0.0 Ok\r\n")
            elif command == "VRFY":
                conn.send(b"252 2.0.0 " + argument.encode() + b"\r\n")
            elif command == "HELP":
                conn.send(b"214-Commands:\r\n214 HELO EHLO MAIL\r\n")
            elif command == "QUIT":
                conn.send(b"221 2.0.0 Bye\r\n")
                return
            elif command == "STARTTLS" and allow_tls:
                conn.send(b"220 2.0.0 Ready to start TLS\r\n")
                conn.tls()
            elif command == "STARTTLS":
                conn.send(b"454 TLS not available\r\n")
            elif command == "AUTH" and not allow_auth:
                conn.send(b"503 5.5.1 Error: authentication not enabled\r\n")
            elif command == "AUTH":
                mechanism, _, initial = argument.partition(" ")
                mechanism = mechanism.upper()
                if mechanism == "LOGIN":
                    conn.send(b"334 VXNlcm5hbWU6\r\n")
                    user = base64.b64decode(conn.line()).decode()
                    conn.send(b"334 UGFzc3dvcmQ6\r\n")
                    ok = USERS.get(user) == base64.b64decode(conn.line()).decode()
                elif mechanism == "PLAIN":
                    if not initial:
                        conn.send(b"334 \r\n")
                        initial = conn.line()
                    parts = base64.b64decode(initial).split(b"\0")
                    ok = len(parts) == 3 and USERS.get(parts[1].decode()) == parts[2].decode()
                elif mechanism == "CRAM-MD5":
                    challenge = b"<1234.5678@mail.test>"
                    conn.send(b"334 " + base64.b64encode(challenge) + b"\r\n")
                    user, _, digest = base64.b64decode(conn.line()).decode().partition(" ")
                    ok = user in USERS and hmac.new(USERS[user].encode(), challenge,
                                                    hashlib.md5).hexdigest() == digest
                elif mechanism == "DIGEST-MD5":
                    fields = b'realm="mail.test",nonce="abc123",qop="auth",algorithm=md5-sess'
                    conn.send(b"334 " + base64.b64encode(fields) + b"\r\n")
                    ok = digest_md5_ok(conn, fields)
                else:
                    conn.send(b"504 5.5.4 Unrecognized authentication type\r\n")
                    continue
                conn.send(b"235 2.7.0 Authentication successful\r\n" if ok
                          else b"535 5.7.8 Authentication failed\r\n")
            else:
                conn.send(b"502 5.5.2 Error: command not recognized\r\n")
    return handler


SESSION = PRELUDE + r'''
local smtp = require "smtp"
local host = {ip = "127.0.0.1"}
local function port(n) return {number = n, protocol = "tcp"} end
for _, n in ipairs({@PLAIN, @MULTI, @REJECT, @IMPLICIT, @CLOSED}) do
  local r = table.pack(smtp.connect(host, port(n), {timeout = 500, recv_before = true}))
  P("connect", r[1] and "socket" or r[1], r[2], r.n)
  if r[1] then
    local ok, response = smtp.ehlo(r[1], "client.test")
    P("ehlo", ok, response)
    P("mechs", table.concat(smtp.get_auth_mech(response) or {"none"}, ","))
    smtp.quit(r[1])
  end
end
local r = table.pack(smtp.connect(host, port(@IMPLICIT), {ssl = true, recv_before = true,
                                                         timeout = 500}))
P("implicit ssl", r[1] and "socket" or r[1], r[2])
smtp.quit(r[1])
local function fresh()
  local s = smtp.connect(host, port(@PLAIN), {recv_before = true})
  smtp.ehlo(s, "c.test")
  return s
end
local s = fresh()
P("query", smtp.query(s, "NOOP"))
P("help", smtp.help(s))
P("mail", smtp.mail(s, "a@b.c"))
P("mail-esmtp", smtp.mail(s, "a@b.c", {SIZE = "10"}))
P("rcpt", smtp.recipient(s, "known@b.c"))
P("data", smtp.datasend(s, "Subject: x\r\n\r\nhello"))
P("reset", smtp.reset(s))
P("verify", smtp.verify(s, "root"))
s = fresh()
P("rcpt-bad", smtp.recipient(s, "nobody@b.c"))
for _, c in ipairs({{"secret", "LOGIN"}, {"wrong", "LOGIN"}, {"secret", "PLAIN"},
                    {"x", "PLAIN"}, {"secret", "CRAM-MD5"}, {"x", "CRAM-MD5"},
                    {"x", "BOGUS"}, {"x", "login"}}) do
  s = fresh()
  local ok, a, b = pcall(smtp.login, s, "admin", c[1], c[2])
  if ok then P("login", c[2], ok, a, b) else P("login", c[2], ok, a:match("Unsupported.*")) end
  P("  then", smtp.query(s, "RSET"))
  smtp.quit(s)
end
s = smtp.connect(host, port(@NOAUTH), {recv_before = true})
P("no challenge", smtp.login(s, "admin", "secret", "CRAM-MD5"))
smtp.quit(s)
s = fresh()
P("starttls", smtp.starttls(s))
P("ehlo over tls", smtp.ehlo(s, "client.test"))
smtp.quit(s)
s = smtp.connect(host, port(@NOTLS), {recv_before = true})
P("starttls refused", smtp.starttls(s))
P("domain", smtp.get_domain({ip = "1.2.3.4"}),
  smtp.get_domain({ip = "1.2.3.4", name = "n.example"}),
  smtp.get_domain({ip = "1.2.3.4", targetname = "t.example", name = "n.example"}),
  smtp.get_domain({ip = "1.2.3.4", name = ""}), smtp.get_domain(nil))
'''


def start_smtp_servers(servers):
    return {
        "PLAIN": servers(smtp_handler()).port,
        "MULTI": servers(smtp_handler(b"220-multi\r\n220 banner\r\n",
                                      (b"AUTH=LOGIN", b"AUTH DIGEST-MD5 NTLM"))).port,
        "REJECT": servers(smtp_handler(b"554 go away\r\n")).port,
        "IMPLICIT": servers(smtp_handler(), implicit_tls=True).port,
        "NOAUTH": servers(smtp_handler(caps=(b"SIZE 10",), allow_auth=False)).port,
        "NOTLS": servers(smtp_handler(allow_tls=False)).port,
        "CLOSED": closed_port(),
    }


def test_session_matches_nmap(tmp_path, servers):
    body = fill(SESSION, start_smtp_servers(servers)) + EPILOGUE
    expected = nmap_lua(tmp_path, body)
    for profile in (SEED, NMAP7):
        assert ours(tmp_path, body, profile) == expected
    lines = expected.split("\n")
    assert '"mechs" | "LOGIN,PLAIN,CRAM-MD5,DIGEST-MD5"' in lines
    assert '"verify" | false | "SMTP: VRFY 252 2.0.0 root\\13\\n"' in lines
    assert '"login" | "LOGIN" | true | true | "Login success"' in lines
    assert '"login" | "PLAIN" | true | false | "535 5.7.8 Authentication failed\\13\\n"' in lines
    assert '"login" | "BOGUS" | false | "Unsupported authentication mechanism (BOGUS)"' in lines
    assert '"no challenge" | false | "ERROR: Failed to retrieve challenge"' in lines
    assert '"starttls refused" | false | "SMTP: STARTTLS 454 TLS not available\\13\\n"' in lines
    assert lines[-1] == ('"domain" | "nmap.scanme.org" | "n.example" | "t.example" | '
                         '"nmap.scanme.org" | "nmap.scanme.org"')


@PROFILES
def test_digest_md5_login(tmp_path, servers, profile):
    # Not in the comparison: Nmap's DIGEST-MD5 goes through its sasl library.
    port = servers(smtp_handler()).port
    body = PRELUDE + f'''
local smtp = require "smtp"
for _, pw in ipairs({{"secret", "wrong"}}) do
  local s = smtp.connect({{ip = "127.0.0.1"}}, {{number = {port}, protocol = "tcp"}},
                         {{recv_before = true}})
  smtp.ehlo(s, "c.test")
  P(smtp.login(s, "admin", pw, "DIGEST-MD5"))
  smtp.quit(s)
end''' + EPILOGUE
    assert ours(tmp_path, body, profile).split("\n") == [
        'true | "Login success"', 'false | "535 5.7.8 Authentication failed\\13\\n"']


def test_domain_argument_and_check_reply_match_nmap(tmp_path):
    rng = random.Random(11)
    commands = ["EHLO", "HELO", "MAIL", "RCPT", "DATA", "STARTTLS", "RSET", "VRFY", "EXPN",
                "HELP", "NOOP", "QUIT", "AUTH", "TURN"]
    replies = [b"211 x", b"214 x", b"220 x", b"221 x", b"235 x", b"250 x", b"251 x", b"252 x",
               b"334 x", b"354 x", b"250-a\r\n550 b", b"550-a\r\n250 b", b"", b"garbage", b"25"]
    for _ in range(60):  # bounded fuzz
        replies.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 10))))
        replies.append(rng.choice([b"250", b"334", b"220"]) + bytes(
            rng.choice(b" -\r\nAUTH LOGIN=x") for _ in range(rng.randint(0, 30))))
    items = ",".join(lua_string(r) for r in replies)
    body = PRELUDE + f'''
local smtp = require "smtp"
local replies = {{{items}}}
for _, cmd in ipairs({{{",".join(f'"{c}"' for c in commands)}}}) do
  local ok = {{}}
  for i, r in ipairs(replies) do
    local status, message = smtp.check_reply(cmd, r)
    ok[#ok + 1] = status and "1" or "0"
    if not status and message ~= ("SMTP: %s %s"):format(cmd, r) then ok[#ok] = "?" end
  end
  P(cmd, table.concat(ok))
end
for i, r in ipairs(replies) do
  local m = smtp.get_auth_mech(r)
  if m then P("mech", i, table.concat(m, ",")) end
end
P(table.concat(smtp.get_auth_mech("250-mail\\r\\n250-AUTH LOGIN PLAIN\\r\\n" ..
                                  "250-AUTH=CRAM-MD5\\r\\n250 SIZE 1"), ","))
P(smtp.get_domain({{ip = "1.2.3.4", targetname = "t.example"}}), smtp.get_domain(nil))
''' + EPILOGUE
    args = "smtp.domain=argdomain.test"
    expected = nmap_lua(tmp_path, body, args)
    assert ours(tmp_path, body, args=args) == expected
    lines = expected.split("\n")
    assert lines[0].startswith('"EHLO" | "00000100001000') and "?" not in expected
    assert lines[-1] == '"argdomain.test" | "argdomain.test"'


def garbage_handler(seed):
    def handler(conn: Conn):
        rng = random.Random(seed)
        for _ in range(rng.randint(1, 5)):
            data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 30)))
            if rng.random() < 0.5:
                data = rng.choice([b"220 ", b"250-", b"334 ", b"250 "]) + data + b"\r\n"
            conn.send(data, bytewise=rng.random() < 0.3)
            if rng.random() < 0.3:
                conn.line()
        if rng.random() < 0.5:
            conn.server.wait(0.4)
    return handler


@PROFILES
def test_garbage_close_and_silence_fail_softly(tmp_path, servers, profile):
    ports = [servers(garbage_handler(seed)).port for seed in range(12)]
    silent = servers(lambda conn: conn.server.wait(30)).port
    body = PRELUDE + f'''
local smtp = require "smtp"
local host = {{ip = "127.0.0.1"}}
for _, n in ipairs({{{",".join(map(str, ports))}}}) do
  local ok, s = pcall(smtp.connect, host, {{number = n, protocol = "tcp"}},
                      {{timeout = 400, recv_before = true}})
  local steps = {{ok}}
  if ok and s then
    for _, f in ipairs({{function() return smtp.ehlo(s, "x") end,
                        function() return smtp.login(s, "admin", "secret", "PLAIN") end,
                        function() return smtp.starttls(s) end,
                        function() return smtp.verify(s, "root") end}}) do
      local fine, status, message = pcall(f)
      steps[#steps + 1] = fine and (status == nil or status == false or status == true)
                          and (message == nil or type(message) == "string")
      if not steps[#steps] then P("step", #steps, fine, status, message) end
      if not status then break end
    end
    pcall(s.close, s)
  end
  local all = true
  for _, v in ipairs(steps) do all = all and v end
  P(all)
end
local t0 = nmap.clock()
local s = smtp.connect(host, {{number = {silent}, protocol = "tcp"}}, {{timeout = 300}})
P("silent", s and "socket", smtp.ehlo(s, "x"))
P(nmap.clock() - t0 < 5)
''' + EPILOGUE
    lines = ours(tmp_path, body, profile).split("\n")
    assert lines[:12] == ["true"] * 12
    assert lines[12] == ('"silent" | "socket" | nil | '
                         '"SMTP EHLO x: failed to receive data: connection timeout"')
    assert lines[13] == "true"


@PROFILES
def test_replies_delivered_one_byte_at_a_time(tmp_path, servers, profile):
    port = servers(smtp_handler(b"220-slow\r\n220 banner\r\n", bytewise=True)).port
    body = PRELUDE + f'''
local smtp = require "smtp"
local s, banner = smtp.connect({{ip = "127.0.0.1"}}, {{number = {port}, protocol = "tcp"}},
                               {{recv_before = true}})
P(banner:sub(1, 1))
-- the rest of the banner may still be arriving: read it before talking
local rest = banner
while not rest:find("220 banner\\r\\n", 1, true) do
  local ok, more = s:receive()
  if not ok then break end
  rest = rest .. more
end
local ok, response = smtp.ehlo(s, "client.test")
P(ok, response)
P(table.concat(smtp.get_auth_mech(response), ","))
smtp.quit(s)''' + EPILOGUE
    assert ours(tmp_path, body, profile).split("\n") == [
        '"2"',
        'true | "250-mail.test Hello client.test\\13\\n250-PIPELINING\\13\\n250-AUTH LOGIN PLAIN '
        'CRAM-MD5 DIGEST-MD5\\13\\n250-STARTTLS\\13\\n250 SIZE 1000\\13\\n"',
        '"LOGIN,PLAIN,CRAM-MD5,DIGEST-MD5"']
