"""nselib/json.lua: generation and parsing, compared with Nmap's. Object members come out in
pairs() order, which Nmap randomizes per run, so objects of several members are compared
through parsing or with one member."""
from nse_support import LUA_OUTPUT, run_lua, run_lua_nmap

PRELUDE = r'''
local json = require "json"
''' + LUA_OUTPUT + r'''local function hex(s)
  return (s:gsub("[^\32-\126]", function(c) return ("<%02x>"):format(c:byte()) end))
end
local function show(v, depth)
  depth = depth or 0
  if depth > 10 then return "..." end
  if v == json.NULL then return "NULL" end
  if type(v) == "table" then
    local mt = getmetatable(v)
    local ks = {}
    for k, x in pairs(v) do ks[#ks + 1] = tostring(k) .. ":" .. show(x, depth + 1) end
    table.sort(ks)
    return (mt and mt.json or "") .. "{" .. table.concat(ks, ",") .. "}"
  end
  if type(v) == "string" then return '"' .. hex(v) .. '"' end
  return tostring(v) .. "(" .. (math.type(v) or type(v)) .. ")"
end
local function try(f, ...)
  local r = table.pack(pcall(f, ...))
  if not r[1] then return "ERR " .. tostring(r[2]):gsub("^.-:%d+: ", "") end
  return hex(tostring(r[2]))
end
'''

GENERATE = PRELUDE + r'''
local cases = {
  {}, {1, 2, 3}, {a = 1}, {"x", {y = true}}, "str", 1, 1.5, -0.0, 1e300, 1/0, -1/0, 2^53,
  123456789012, true, false, json.NULL, "quote\"back\\slash/ctrl\0\1\31\127\128\255\n\r\t\b\f",
  "\195\188n\195\175code \226\130\172", json.make_array({}), json.make_object({}),
  json.make_array({a = 1}), json.make_object({1}), {[1] = 1, [3] = 3}, {[2] = 2}, {1, 2, x = 3},
  {[1.5] = 1}, {{}, {{}}}, {a = {b = {c = {}}}}, 0.1, 1/3, 100, -5, 1e-7, 3.0, 12345678.9,
  {["k\"ey\n"] = "v"}, {{1, "two", {three = 3}, false}, {json.NULL}},
}
for i, v in ipairs(cases) do p(i, try(json.generate, v)) end
p(try(json.generate, nil), try(json.generate, print), try(json.generate, {f = print}))
local stdnse = require "stdnse"
local o = stdnse.output_table() o.z = 1 o.a = 2
p(json.generate(o))  -- # counts its keys, so it is taken for an (empty) array
p(json.typeof({}), json.typeof({1}), json.typeof({a = 1}), json.typeof(json.make_array({})),
  json.typeof(json.make_object({})), json.typeof("s"), json.typeof(1), json.typeof(nil),
  json.typeof(true), json.typeof(json.NULL), json.typeof(print))
p(type(json.NULL), getmetatable(json.NULL), next(json.NULL))
p(getmetatable(json.make_array({})).json, getmetatable(json.make_object({})).json)
local a = {1} p(json.make_array(a) == a)
local many = {}
for _, k in ipairs{"alpha", "beta", "gamma", "delta", "epsilon"} do many[k] = #k end
local ok, back = json.parse(json.generate(many))
p(ok, show(back))
return table.concat(out, "\n")
'''

PARSE = PRELUDE + r'''
for _, s in ipairs{'{}', '[]', '[1, 2, 3]', '{"a": 1, "b": [true, false, null]}', '"str"', '1',
  '-1.5e3', '1E2', '0', '-0', '0.5', '1.0', '12345678901234567890', '9007199254740993',
  '"\\u0041\\u00e9\\u20ac\\ud83d\\ude00"', '"\\n\\r\\t\\b\\f\\/\\\\\\""', '"\\x41"', '"\\a"',
  '"raw\ttab"', '"raw\nnewline"', '"\1"', '  {  "a"  :  1  }  ', '{"a":1,}', '[1,]', '[1 2]',
  '{"a" 1}', '{a: 1}', "{'a': 1}", '', ' ', 'nul', 'null', 'true', 'false', 'True', 'NaN',
  'Infinity', '-Infinity', '01', '.5', '5.', '+1', '1e', '0x10', '{"a":1} trailing', '[1] [2]',
  '"unterminated', '[', '{', '{"a":', '["a"', '{"a":1,"a":2}', '{"":1}', '[[[[[]]]]]',
  '{"a":{"b":{}}}', '[null]', '{"n":null}', '"\\u00"', '"\\uZZZZ"', '"\\u0000"',
  '\239\187\191{}', '[1e400]', '[-1e400]', '1.5E-3', '[0.1, 1e-7]', '"\\U0041"',
  '{"a" : [ 1 , { "b" : "c" } ] }', '[true,false,null]', '[truefalse]', '{"a":nul}', '123abc',
  '"a" "b"', '\n[1]\n', '\t[1]\r\n', '[ ]', '{ }', '1.2.3', '-', '1e+5', '1E-5', '[1,\n2]',
  '"\\u00E9"', '"\\uD83D\\uDE00"', '"\\uDBFF\\uDFFF"', '"\\ud800\\udc00"', '"\\uffff"',
  '"\\u0080"', '"\\u07ff"', '"\\u0800"', '[-]', '[1.]', '[.]', '[-.5]', '[0x]', '[1e5e5]',
  '[0X1F]', '[1_000]', '[0b1]', '[ 1 , 2 ]', '"\\"', '"\\\\"', '"a\\', '[1]\0', '"\0"',
  '[1]\v', '\f[1]', '{"a"\n:\n1}', '["\\u"]', '["\\u1"]', '["\\u12"]', '["\\u123"]',
  '["\\u123g"]', '[0.0000001]', '[100000000000000000000000]', '[-9223372036854775808]',
  '[9223372036854775807]', '[9223372036854775808]', '[0xff]', '[-0x10]', '{"a":[1,{"b":null}]}',
  '"\\ud83d"', '"\\ude00"', '"\\ud83d\\u0041"', '"\\ud83dx"', '"\\uD83D"'} do
  local r = table.pack(pcall(json.parse, s))
  if r[1] then
    local v = r[3]
    if r[2] == false then v = tostring(v):gsub("^.-:%d+: ", "") end
    p(hex(s), r.n, tostring(r[2]), show(v))
  else
    p(hex(s), "ERR", tostring(r[2]):gsub("^.-:%d+: ", ""))
  end
end
p(json.parse(5))
local ok, v = json.parse('[1,2]') p(getmetatable(v).json, json.typeof(v), json.generate(v))
local ok, v = json.parse('{}') p(getmetatable(v).json, json.typeof(v), json.generate(v))
local ok, v = json.parse('[]') p(getmetatable(v).json, json.typeof(v), json.generate(v))
local ok, v = json.parse('null') p(v == json.NULL, json.generate(v))
local ok, v = json.parse('{"a":null}') p(v.a == json.NULL)
return table.concat(out, "\n")
'''


def test_generate_matches_nmap(tmp_path):
    ours = run_lua(tmp_path, GENERATE)
    lines = ours.split("\n")
    assert "2 | [1, 2, 3]" in lines and '3 | {"a": 1}' in lines and "1 | {}" in lines
    assert '17 | "quote\\"back\\\\slash\\/ctrl<00><01><1f><7f><80><ff>\\n\\r\\t\\b\\f"' in lines
    assert "ERR Unknown data type in generate | ERR Unknown data type in generate | " \
        "ERR Unknown data type in generate" in lines
    assert "true | object{alpha:5(integer),beta:4(integer),delta:5(integer)," \
        "epsilon:7(integer),gamma:5(integer)}" in lines
    assert run_lua_nmap(tmp_path, GENERATE) == ours


def test_parse_matches_nmap(tmp_path):
    ours = run_lua(tmp_path, PARSE)
    lines = ours.split("\n")
    assert 'false | 3 | false | "syntax error"' in lines  # a text that is false fails
    assert '"\\u0041\\u00e9\\u20ac\\ud83d\\ude00" | 3 | true | "A<c3><a9><e2><82><ac><f0><9f>' \
        '<98><80>"' in lines
    assert '"\\ud83d\\u0041" | 3 | false | "Bad unicode escape \\ud83d\\u0041 (bad low ' \
        'surrogate)"' in lines
    assert '"\\ude00" | 3 | false | "Not a Unicode character: U+DE00"' in lines
    assert run_lua_nmap(tmp_path, PARSE) == ours


def test_bad_arguments_and_cycles(tmp_path):
    body = PRELUDE + r'''
    p(json.parse(nil)) p(json.parse({}))
    local t = {} t.self = t
    p(try(json.generate, t), try(json.generate, {[true] = 1}))
    local deep = "" for i = 1, 150 do deep = deep .. "[" end
    for i = 1, 150 do deep = deep .. "]" end
    local ok, v = json.parse(deep) p(ok, json.generate(v) == deep)
    return table.concat(out, "\n")'''
    assert run_lua(tmp_path, body).split("\n") == [
        "false | bad argument #1 to 'parse' (string expected, got nil)",
        "false | bad argument #1 to 'parse' (string expected, got table)",
        "ERR cannot generate a table that contains itself | "
        "ERR object keys must be strings or numbers, got boolean",
        "true | true"]


FUZZ = PRELUDE + r'''
local seed = 12345
local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648 return seed % n + 1 end
for _ = 1, 2500 do
  local t = {}
  for _ = 1, rnd(14) - 1 do
    local alphabet = '[]{}:,"\\ 0123456789.-+eEtruefalsnlu'
    local k = rnd(#alphabet)
    t[#t + 1] = alphabet:sub(k, k)
  end
  local s = table.concat(t)
  local ok, v = json.parse(s)
  if not ok then v = tostring(v):gsub("^.-:%d+: ", "") end
  p(hex(s), ok, show(v))
end
return table.concat(out, "\n")
'''


def test_generated_texts_parse_like_nmap(tmp_path):
    ours = run_lua(tmp_path, FUZZ)
    assert ours.count(" | true | ") > 100  # some of them are valid JSON
    assert run_lua_nmap(tmp_path, FUZZ) == ours
