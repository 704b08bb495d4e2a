"""nselib/unpwdb.lua compared with Nmap's unpwdb on the same Lua: list files given by
userdb/passdb (comments, blank and odd lines), the count limits, the time limit argument,
and the iterator helpers with "reset". Our default lists (nselib/data) are checked on their
own: they are ours, not Nmap's."""
from __future__ import annotations

from pathlib import Path

from test_ftp import EPILOGUE, PRELUDE, nmap_lua, ours

from worker.nse.profile import NMAP7, SEED

REPO = Path(__file__).resolve().parent.parent.parent

USERS = (b"#!comment: test list\nalice\nbob\n\n  spaced  \n#!comment: another\n"
         b"carol\r\nd\xc3\xa9\nlast")
PASSWORDS = b"secret\n#!comment:x\n\n123456\npassword\nqwerty\n"

BODY = PRELUDE + r'''
local unpwdb = require "unpwdb"
local function drain(iter, n)
  local got = {}
  for _ = 1, n or 50 do
    local v = iter()
    if v == nil then break end
    got[#got + 1] = v
  end
  return table.concat(got, "|")
end
local ok, users = unpwdb.usernames()
P("users", ok, drain(users))
P("users again", drain(users))
users("reset")
P("users reset", drain(users, 2))
local ok2, pws = unpwdb.passwords()
P("passwords", ok2, drain(pws))
P("limited", drain(select(2, unpwdb.usernames(nil, 2))), drain(select(2, unpwdb.passwords(0, 1))))
P("timelimit", pcall(unpwdb.timelimit))
local t = unpwdb.table_iterator({"a", "b", "c"})
P("table", t(), t(), t("reset"), t(), t(), t(), t())
local l = unpwdb.limited_iterator(unpwdb.table_iterator({"a", "b", "c"}), 100, 2)
P("limited iterator", l(), l(), l())
l("reset")
P("after reset", l(), l(), l())
local c = unpwdb.concat_iterators(unpwdb.table_iterator({"1", "2"}), unpwdb.table_iterator({"3"}))
P("concat", c(), c(), c(), c())
c("reset")
P("concat reset", c(), c())
local f = unpwdb.filter_iterator(unpwdb.table_iterator({"aa", "b", "cc", "d"}),
                                 function(v) return #v == 2 end)
P("filter", f(), f(), f())
f("reset")
P("filter reset", f())
'''


def lists(tmp_path: Path) -> str:
    (tmp_path / "users.txt").write_bytes(USERS)
    (tmp_path / "pass.txt").write_bytes(PASSWORDS)
    return f"userdb={tmp_path / 'users.txt'},passdb={tmp_path / 'pass.txt'}"


def test_lists_and_iterators_match_nmap(tmp_path):
    args = lists(tmp_path)
    body = BODY + EPILOGUE
    expected = nmap_lua(tmp_path, body, args)
    for profile in (SEED, NMAP7):
        assert ours(tmp_path, body, profile, args=args) == expected
    lines = expected.split("\n")
    assert lines[0] == '"users" | true | "alice|bob||  spaced  |carol\\13|d\\195\\169|last"'
    assert lines[1] == '"users again" | ""'
    assert lines[3] == '"passwords" | true | "secret||123456|password|qwerty"'
    assert lines[4] == '"limited" | "alice|bob" | "secret"'
    assert lines[5] == '"timelimit" | true | 900'  # 10 minutes, +50% for userdb/passdb
    assert lines[7] == '"limited iterator" | "a" | "b"'  # past the limit: nothing at all


def test_limit_arguments_match_nmap(tmp_path):
    args = lists(tmp_path) + ",unpwdb.userlimit=3,unpwdb.passlimit=2,unpwdb.timelimit=2m"
    body = BODY + EPILOGUE
    expected = nmap_lua(tmp_path, body, args)
    assert ours(tmp_path, body, args=args) == expected
    lines = expected.split("\n")
    assert lines[0] == '"users" | true | "alice|bob|"'
    assert lines[3] == '"passwords" | true | "secret|"'
    assert lines[5] == '"timelimit" | true | 120'


def test_missing_list_and_bad_timelimit_match_nmap(tmp_path):
    body = PRELUDE + r'''
local unpwdb = require "unpwdb"
local ok, err = unpwdb.usernames()
P("users", ok, type(err))
local ok2, err2 = unpwdb.passwords()
P("passwords", ok2, type(err2))
P("timelimit", (pcall(unpwdb.timelimit)))
''' + EPILOGUE
    args = f"userdb={tmp_path / 'none.txt'},passdb={tmp_path / 'none2.txt'},unpwdb.timelimit=xyz"
    expected = nmap_lua(tmp_path, body, args)
    assert ours(tmp_path, body, args=args) == expected
    assert expected.split("\n") == ['"users" | false | "string"', '"passwords" | false | "string"',
                                    '"timelimit" | false']


def test_our_default_lists(tmp_path):
    body = PRELUDE + r'''
local unpwdb = require "unpwdb"
local ok, users = unpwdb.usernames()
local n, first = 0, users()
while users() do n = n + 1 end
local ok2, pws = unpwdb.passwords()
local m = 0
while pws() do m = m + 1 end
P(ok, first, n + 1, ok2, m)
''' + EPILOGUE
    names = [line for line in (REPO / "nselib/data/usernames.lst").read_text().splitlines()
             if not line.startswith("#!comment:")]
    words = [line for line in (REPO / "nselib/data/passwords.lst").read_text().splitlines()
             if not line.startswith("#!comment:")]
    assert ours(tmp_path, body) == f'true | "{names[0]}" | {len(names)} | true | {len(words)}'
    assert len(names) >= 10 and len(words) >= 20
