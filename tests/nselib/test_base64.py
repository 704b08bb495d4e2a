"""nselib/base64.lua: encoding and decoding, valid and invalid input, compared with Nmap's."""
from nse_support import LUA_OUTPUT, run_lua, run_lua_nmap

PRELUDE = r'''
local base64 = require "base64"
''' + LUA_OUTPUT + r'''local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
local function try(f, ...)
  local ok, r = pcall(f, ...)
  if ok then return "ok " .. hex(r) end
  return "err " .. tostring(r):gsub("^.-:%d+: ", "")
end
'''

BODY = PRELUDE + r'''
for _, s in ipairs{"", "f", "fo", "foo", "foob", "fooba", "foobar", "\0\255\254",
                   string.rep("\255\0\128", 40), string.rep("x", 100)} do
  p(base64.enc(s))
end
local all = {}
for i = 0, 255 do all[#all + 1] = string.char(i) end
all = table.concat(all)
p(base64.enc(all))
for i = 0, 5 do
  local s = all:sub(1, 250 + i)
  p(base64.dec(base64.enc(s)) == s, #base64.enc(s))
end
for _, s in ipairs{"Zm9v", "Zm9vYg==", "Zm9vYg", "Zm9vYg=", "Zm 9v\nYg==", "Zm9v!Yg==", "====",
  "", "Z", "Zm", "Zm9vYmFy", "YQ==YQ==", "-_-_", "+/+/", "AB=C", "A===", "=A==", "A=B=",
  "QQ=\n=", "QUJD\tREVG", "QUJDREVG=", "QUJD====", "QUJDRE==", "QUJDRA==", "QUJDRB==",
  "QUJDREU=", "QUJDREV=", "QUJ=", "\r\n", "QU\0JD", "  ", "QQ==\n", "QQ==  ", "QQ==QQ==",
  "QUJD=QQ=", "=AAA", "A=AA", "AA=A", "AAA=", "==AA", "A==A", "=A=A", "!!==QQ==", "QQ==!!!!",
  "QQ=!", "Q!==", "QQ\0=", "\0AAA", "AAAA\0AAA", "QUJD\vQQ==", "QUJD\fQQ=="} do
  p((s:gsub("%c", "~")), try(base64.dec, s))
end
return done()
'''


def test_base64_matches_nmap(tmp_path):
    ours = run_lua(tmp_path, BODY)
    lines = ours.split("\n")
    assert lines[:7] == ["", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"]
    assert "Zm 9v~Yg== | ok 666f6f62" in lines  # white space is ignored
    assert "Zm9vYg | err invalid encoding: input is not divisible by 4" in lines
    assert "YQ==YQ== | err invalid encoding: trailing characters" in lines
    assert "-_-_ | err invalid encoding: invalid character" in lines
    assert run_lua_nmap(tmp_path, BODY) == ours


def test_bad_arguments_raise_errors_not_runtime_faults(tmp_path):
    body = PRELUDE + r'''
    p(try(base64.enc, nil)) p(try(base64.enc, 12)) p(try(base64.dec, nil)) p(try(base64.dec, {}))
    return done()'''
    assert run_lua(tmp_path, body).split("\n") == [
        "err bad argument #1 to 'enc' (string expected, got nil)",
        "err bad argument #1 to 'enc' (string expected, got number)",
        "err bad argument #1 to 'dec' (string expected, got nil)",
        "err bad argument #1 to 'dec' (string expected, got table)"]


FUZZ = PRELUDE + r'''
local seed = 99
local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648 return seed % n + 1 end
for _ = 1, 2000 do
  local t = {}
  for _ = 1, rnd(14) - 1 do
    local alphabet = "ABCabc019+/= \n!"
    local k = rnd(#alphabet)
    t[#t + 1] = alphabet:sub(k, k)
  end
  local s = table.concat(t)
  p((s:gsub("\n", "~")), try(base64.dec, s))
end
return done()
'''


def test_generated_inputs_decode_like_nmap(tmp_path):
    ours = run_lua(tmp_path, FUZZ)
    assert ours.count(" | ok ") > 100 and ours.count(" | err ") > 100
    assert run_lua_nmap(tmp_path, FUZZ) == ours
