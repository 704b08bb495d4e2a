"""nselib/base32.lua: standard and extended-hex alphabets, valid and invalid input, compared
with Nmap's."""
from nse_support import LUA_OUTPUT, run_lua, run_lua_nmap

PRELUDE = r'''
local base32 = require "base32"
''' + LUA_OUTPUT + r'''local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
local function try(f, ...)
  local ok, r = pcall(f, ...)
  if ok then return "ok " .. hex(r) end
  return "err " .. tostring(r):gsub("^.-:%d+: ", "")
end
'''

BODY = PRELUDE + r'''
for _, s in ipairs{"", "f", "fo", "foo", "foob", "fooba", "foobar", "\0\255\254"} do
  p(base32.enc(s), base32.enc(s, true))
end
p(base32.enc("abc", false), base32.enc("abc", 1), base32.enc("abc", "yes"))
local all = {}
for i = 0, 255 do all[#all + 1] = string.char(i) end
all = table.concat(all)
p(base32.enc(all)) p(base32.enc(all, true))
for i = 0, 6 do
  local s = all:sub(1, 250 + i)
  p(base32.dec(base32.enc(s)) == s, base32.dec(base32.enc(s, true), true) == s, #base32.enc(s))
end
for _, s in ipairs{"MZXW6===", "MZXW6", "mzxw6===", "MZXW6YQ=", "MZ XW6===", "CPNMU===",
  "CPNMU", "", "M", "MZ", "MZXW6YTBOI======", "1", "MZXW 6==", "========", "MZXW6Y==",
  "MZXW6YT=", "M=======", "MY======", "MZ======", "MZX=====", "MZXQ====", "MZXW====",
  "MZXW6===", "MZXW6YQ=MZXW6YQ=", "MZXW6YQ=\n", "AAAAAAAA", "ZZZZZZZZ", "77777777", "88888888",
  "=AAAAAAA", "A=AAAAAA", "AA=AAAAA", "M=XW6YT=", "MZ=W6YT=", "MZXW6=Y=", "MZXW6YQ=!AAAAAAA",
  "!AAAAAAAMZXW6YQ=", "MZXW6Y\0=", "CO======", "CPNG====", "CPNMUOG=", "CPNMUOJ1",
  "CPNMUOJ1E8======"} do
  p((s:gsub("%c", "~")), try(base32.dec, s), try(base32.dec, s, true))
end
return done()
'''


def test_base32_matches_nmap(tmp_path):
    ours = run_lua(tmp_path, BODY)
    lines = ours.split("\n")
    assert lines[:7] == [" | ", "MY====== | CO======", "MZXQ==== | CPNG====",
                         "MZXW6=== | CPNMU===", "MZXW6YQ= | CPNMUOG=", "MZXW6YTB | CPNMUOJ1",
                         "MZXW6YTBOI====== | CPNMUOJ1E8======"]
    assert "CPNMU=== | ok 13daca | ok 666f6f" in lines
    assert ("MZX===== | err invalid encoding: invalid character | "
            "err invalid encoding: invalid character") in lines
    assert run_lua_nmap(tmp_path, BODY) == ours


def test_bad_arguments_raise_errors_not_runtime_faults(tmp_path):
    body = PRELUDE + r'''p(try(base32.enc, nil)) p(try(base32.dec, 5)) return done()'''
    assert run_lua(tmp_path, body).split("\n") == [
        "err bad argument #1 to 'enc' (string expected, got nil)",
        "err bad argument #1 to 'dec' (string expected, got number)"]


FUZZ = PRELUDE + r'''
local seed = 31
local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648 return seed % n + 1 end
for _ = 1, 2000 do
  local t = {}
  local len = rnd(3) == 1 and rnd(20) - 1 or 8 * rnd(3)
  for _ = 1, len do
    local alphabet = "MZXW6Y=====AV29a "
    local k = rnd(#alphabet)
    t[#t + 1] = alphabet:sub(k, k)
  end
  local s = table.concat(t)
  p(s, try(base32.dec, s), try(base32.dec, s, true))
end
return done()
'''


def test_generated_inputs_decode_like_nmap(tmp_path):
    ours = run_lua(tmp_path, FUZZ)
    assert ours.count("| ok ") > 100
    assert run_lua_nmap(tmp_path, FUZZ) == ours
