"""nselib/brute.lua: a real brute.Engine with a small Driver against a login service the test
runs on 127.0.0.1 (one line "user password", answered "OK" or "FAIL"), in our engine and
under nmap with Nmap's brute library on the same service. The found accounts, the creds
registry afterwards and the result table (as the engine prints it, with the run-to-run
statistics masked) must match, in the default mode, user mode, creds mode (credfile),
firstonly, a per-user guess limit, and when the driver aborts."""
from __future__ import annotations

import re
import threading

import pytest
from tcp_peer import TcpServer, read_line
from test_ftp import nmap_lua, ours

from worker.nse.profile import NMAP7, SEED

USERS = "admin\nguest\nroot\ntest\n"
PASSWORDS = "123456\npassword\nletmein\nqwerty\ntoor\n"
CREDFILE = "admin/wrong\nadmin/letmein\nroot/toor\nnobody/x\n"


class LoginServer(TcpServer):
    """Accepts "user password" lines; answers OK for the known accounts, FAIL otherwise,
    BANNED (then closes) for the user "banned". Records every attempt."""

    def __init__(self, accounts: dict[str, str]):
        self.accounts = accounts
        self.attempts: list[tuple[str, str]] = []
        self._attempts_lock = threading.Lock()
        super().__init__("127.0.0.1", 0, self._serve, backlog=64)

    def _serve(self, sock):
        buffer = bytearray()
        sock.settimeout(10)
        for _ in range(100):
            line = read_line(sock, buffer)
            if line is None:
                return
            user, _, password = line.partition(" ")
            with self._attempts_lock:
                self.attempts.append((user, password))
            if user == "banned":
                sock.sendall(b"BANNED\n")
                return
            sock.sendall(b"OK\n" if self.accounts.get(user) == password else b"FAIL\n")

    def take_attempts(self):
        with self._attempts_lock:
            taken, self.attempts = self.attempts, []
        return taken


@pytest.fixture
def login_server():
    started = []

    def start(accounts):
        server = LoginServer(accounts)
        started.append(server)
        return server
    yield start
    for server in started:
        server.close()


BODY = r'''
local brute = require "brute"
local creds = require "creds"
local nmap = require "nmap"
local stdnse = require "stdnse"
local Driver = {
  new = function(self, host, port, options)
    local o = {host = host, port = port, options = options}
    setmetatable(o, self)
    self.__index = self
    return o
  end,
  connect = function(self)
    self.socket = brute.new_socket()
    self.socket:set_timeout(3000)
    return self.socket:connect(self.host, self.port)
  end,
  login = function(self, username, password)
    self.socket:send(username .. " " .. password .. "\n")
    local status, line = self.socket:receive_buf("\n", false)
    if not status then
      local err = brute.Error:new("Receive failed")
      err:setRetry(true)
      return false, err
    end
    if line == "OK" then
      return true, creds.Account:new(username, password, creds.State.VALID)
    end
    if line == "BANNED" then
      local err = brute.Error:new("Banned by the server")
      err:setAbort(true)
      return false, err
    end
    return false, brute.Error:new("Incorrect password")
  end,
  disconnect = function(self)
    self.socket:close()
    return true
  end,
  check = function(self) return true end,
}
local host = {ip = "127.0.0.1"}
local port = {number = @PORT, protocol = "tcp", service = "login-test"}
local engine = brute.Engine:new(Driver, host, port)
engine.options.script_name = "lua-check"
@SETUP
local status, result = engine:start()
local found = {}
for c in creds.Credentials:new(creds.ALL_DATA):getCredentials() do
  found[#found + 1] = table.concat({tostring(c.user), tostring(c.pass), tostring(c.state),
                                    tostring(c.service), tostring(c.port),
                                    tostring(c.host and c.host.ip)}, "/")
end
table.sort(found)
local out = stdnse.output_table()
out.status = tostring(status)
out.result = result
out.registry = table.concat(found, ", ")
return out
'''

STATS = re.compile(r"Performed \d+ guesses in \d+ seconds, average tps: [\d.]+")


def masked(text: str) -> str:
    """The statistics' numbers masked, and the account lines in sorted order: workers run
    at once, so which account is found first varies from run to run in both tools."""
    text = STATS.sub("Performed N guesses in N seconds, average tps: N", text)
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.strip() == "Accounts:":
            end = i + 1
            while end < len(lines) and lines[end].startswith(line[:line.index("A")] + "  "):
                end += 1
            lines[i + 1:end] = sorted(lines[i + 1:end])
    return "\n".join(lines)


def lists(tmp_path):
    (tmp_path / "users.lst").write_text(USERS)
    (tmp_path / "pass.lst").write_text(PASSWORDS)
    (tmp_path / "cred.lst").write_text(CREDFILE)
    return {"users": tmp_path / "users.lst", "pass": tmp_path / "pass.lst",
            "cred": tmp_path / "cred.lst"}


def compare(tmp_path, server, args: str, setup: str = "", profiles=(SEED,)):
    body = BODY.replace("@PORT", str(server.port)).replace("@SETUP", setup)
    expected = nmap_lua(tmp_path, body, args)
    theirs = set(server.take_attempts())
    assert "Performed" in expected, expected
    for profile in profiles:
        got = ours(tmp_path, body, profile, args=args)
        assert masked(got) == masked(expected), f"--- ours\n{got}\n--- nmap\n{expected}"
        mine = set(server.take_attempts())
        # The guesses for an account being found while other workers run may or may not be
        # handed out before it is: compare the other users' guesses exactly.
        def settled(attempts):
            return {(u, p) for u, p in attempts if u not in server.accounts}
        assert settled(mine) == settled(theirs)
        assert {a for a in mine if a[0] in server.accounts} >= {
            (u, p) for u, p in server.accounts.items() if (u, p) in theirs}
    return masked(expected), theirs


def test_default_mode_matches_nmap(tmp_path, login_server):
    files = lists(tmp_path)
    server = login_server({"admin": "letmein", "guest": "guest"})
    args = f"userdb={files['users']},passdb={files['pass']}"
    text, attempts = compare(tmp_path, server, args, profiles=(SEED, NMAP7))
    assert "admin:letmein - Valid credentials" in text
    assert "guest:guest - Valid credentials" in text
    assert "registry: admin/letmein/Valid credentials/login-test/" in text
    assert ("guest", "guest") in attempts and ("root", "root") in attempts
    assert ("root", "toor") in attempts and ("test", "qwerty") in attempts


def test_user_mode_and_guess_limit_match_nmap(tmp_path, login_server):
    files = lists(tmp_path)
    server = login_server({"root": "toor"})
    args = (f"userdb={files['users']},passdb={files['pass']},brute.mode=user,"
            "brute.useraspass=false,brute.guesses=3")
    text, attempts = compare(tmp_path, server, args)
    assert "No valid accounts found" in text
    assert len(attempts) == 12  # 4 users x 3 guesses
    assert ("root", "toor") not in attempts


def test_creds_mode_matches_nmap(tmp_path, login_server):
    files = lists(tmp_path)
    server = login_server({"admin": "letmein", "root": "toor"})
    args = f"brute.mode=creds,brute.credfile={files['cred']}"
    text, attempts = compare(tmp_path, server, args)
    assert "admin:letmein - Valid credentials" in text and "root:toor" in text
    assert attempts == {("admin", "wrong"), ("admin", "letmein"), ("root", "toor"),
                        ("nobody", "x")}


def test_firstonly_matches_nmap(tmp_path, login_server):
    files = lists(tmp_path)
    server = login_server({"test": "qwerty"})
    args = (f"userdb={files['users']},passdb={files['pass']},brute.firstonly=true,"
            "brute.threads=1,brute.start=1")
    text, _ = compare(tmp_path, server, args)
    assert "test:qwerty - Valid credentials" in text


def test_abort_matches_nmap(tmp_path, login_server):
    (tmp_path / "users.lst").write_text("alice\nbanned\nzed\n")
    (tmp_path / "pass.lst").write_text("a\nb\nc\n")
    server = login_server({})
    args = (f"userdb={tmp_path / 'users.lst'},passdb={tmp_path / 'pass.lst'},"
            "brute.threads=1,brute.start=1")
    text, _ = compare(tmp_path, server, args)
    assert "Banned by the server" in text
