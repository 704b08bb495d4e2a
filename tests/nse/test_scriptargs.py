"""Script arguments (nse-spec §3): parsing, the arguments file, get_script_args.

Nmap is the reference: ``nmap -sL -n --script <dump.nse> --script-args ...`` runs only the
test's own pre-scan script, which prints ``nmap.registry.args`` (strings as hex, so every
byte survives) or the result of ``stdnse.get_script_args``. -sL sends no packet."""
from __future__ import annotations

import json
import os
import random
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.errors import UserError
from worker.nse.scriptargs import (
    ScriptArgs,
    ScriptArgsError,
    combine_args,
    get_script_args,
    parse_script_args,
    read_args_file,
)

DUMP = r'''
description = "Prints nmap.registry.args as JSON, strings as the hex of their bytes."
categories = {"safe"}
prerule = function() return true end
local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
local function json(v)
  if type(v) == "string" then return '{"s":"' .. hex(v) .. '"}' end
  if type(v) == "number" then return '{"n":' .. tostring(v) .. '}' end
  if type(v) ~= "table" then return '{"other":"' .. hex(type(v) .. ":" .. tostring(v)) .. '"}' end
  local parts = {}
  for k, x in pairs(v) do
    parts[#parts + 1] = "[" .. (type(k) == "number" and tostring(k) or json(k)) .. "," .. json(x) .. "]"
  end
  return '{"t":[' .. table.concat(parts, ",") .. "]}"
end
action = function()
  local stdnse = require "stdnse"
  local results = {}
  for i, query in ipairs(QUERIES) do
    local got = table.pack(stdnse.get_script_args(table.unpack(query)))
    local values = {}
    for j = 1, got.n do values[j] = got[j] == nil and '{"nil":1}' or json(got[j]) end
    results[i] = "[" .. table.concat(values, ",") .. "]"
  end
  return "ARGS-JSON " .. json(nmap.registry.args) .. " QUERIES-JSON [" .. table.concat(results, ",") .. "]"
end
'''


def from_json(value):
    if "s" in value:
        return bytes.fromhex(value["s"]).decode("utf-8", "surrogateescape")
    if "t" in value:
        return {(k if isinstance(k, int) else from_json(k)): from_json(v) for k, v in value["t"]}
    if "n" in value:
        return value["n"]
    if "nil" in value:
        return None
    raise AssertionError(f"unexpected value from Lua: {value}")


def lua_string(text: str) -> str:
    return '"' + "".join(f"\\{b}" for b in text.encode()) + '"'


def write_dump(directory: Path, queries=()) -> Path:
    lua_queries = ", ".join(
        "{" + ", ".join(lua_string(q) if isinstance(q, str)
                        else "{" + ", ".join(map(lua_string, q)) + "}" for q in query) + "}"
        for query in queries)
    script = directory / "dump-args.nse"
    script.write_text(f"QUERIES = {{{lua_queries}}}\n{DUMP}")
    return script


def run_nmap(nmap: str, script: Path, *options: str, cwd=None):
    """(args as_lua_ready-like dict, [query results]) or "ERROR: <message>"."""
    env = {k: v for k, v in os.environ.items() if k != "NMAPDIR"}
    env["HOME"] = str(script.parent)
    result = subprocess.run([nmap, "-sL", "-n", "--script", str(script), *options,
                             "127.0.0.1"], check=False, capture_output=True, text=True, timeout=120,
                            cwd=cwd or script.parent, env=env)
    found = re.search(r"ARGS-JSON (.*) QUERIES-JSON (.*)", result.stdout)
    if found:
        queries = [tuple(from_json(v) for v in q) for q in json.loads(found.group(2))]
        return from_json(json.loads(found.group(1))), queries
    error = re.search(r"nse_main\.lua:\d+: (.*)", result.stdout + result.stderr)
    assert error, result.stdout + result.stderr
    return "ERROR: " + error.group(1)


def ours(text: str):
    try:
        return parse_script_args(text).as_lua_ready()
    except ScriptArgsError as error:
        return "ERROR: " + str(error)


# ---------------------------------------------------------------------------------------------
# The spec's examples and the grammar


def test_spec_examples():
    assert ours("x=y,,") == {1: "", 2: "", "x": "y"}
    assert ours("bar = two words ") == {"bar": "two words"}
    assert ours("a=1") == {"a": "1"}
    assert ours("smb-enum.x=1") == {"smb-enum.x": "1"}
    assert ours("a=1\n") == {1: "", "a": "1"}  # the newline at the end of an args file
    assert ours("") == {}


def test_values_are_strings_and_tables_nest():
    args = parse_script_args('a=1, b={x, y, k=v, {z}}, "c d"=\'e, f\', g')
    assert args == ScriptArgs((
        ("a", "1"),
        ("b", ScriptArgs(((None, "x"), (None, "y"), ("k", "v"), (None, ScriptArgs(((None, "z"),)))))),
        ("c d", "e, f"),
        (None, "g"),
    ))
    assert args.as_lua_ready() == {"a": "1", "b": {1: "x", 2: "y", "k": "v", 3: {1: "z"}},
                                   "c d": "e, f", 1: "g"}


def test_later_duplicates_win():
    args = parse_script_args("a=1,b,a=2,c,a={x}")
    assert [key for key, _ in args.fields] == ["a", None, "a", None, "a"]
    assert args.as_lua_ready() == {"a": {1: "x"}, 1: "b", 2: "c"}
    assert ours("1=x,y") == {"1": "x", 1: "y"}  # keys are strings, never array indices


@pytest.mark.parametrize("text, expected", [
    # observed with nmap 7.93 (see test_parsing_matches_nmap for the live comparison)
    ("a b", {1: "a b"}), ("a\tb", {1: "a\tb"}), (" a ", {1: "a"}), ("=a", {"": "a"}),
    ("a=", {"a": ""}), ("a={}", {"a": {1: ""}}), ("{}", {1: {1: ""}}),
    (",", {1: "", 2: ""}), ("\n", {1: ""}), ("a=1\n\nb=2", {"a": "1", "b": "2"}),
    ("a=b\n,c", {1: "", 2: "c", "a": "b"}), ("a \n , b", {1: "a", 2: "", 3: "b"}),
    ('a="x,y"', {"a": "x,y"}), ("a='x\"y'", {"a": 'x"y'}), ("a='x\\'y'", {"a": "x'y"}),
    ('a="x\\\\y"', {"a": "x\\y"}), ('a="x\\ny"', {"a": "x\\ny"}), ('a="\\a"', {"a": "\\a"}),
    ('a="x\\\'y"', {"a": "x\\'y"}), ('a="x\ny"', {"a": "x\ny"}),
    ('a="unterminated', {"a": '"unterminated'}), ('a="x\\"', {"a": '"x\\"'}),
    ('a="x,y', {1: "y", "a": '"x'}), ("a=x'y", {"a": "x'y"}), ('"a b"=c', {"a b": "c"}),
    ("a.b.c=d", {"a.b.c": "d"}), ("[1]=x", {"[1]": "x"}), ("a=\u00e9", {"a": "\u00e9"}),
    ("a=\x0b", {"a": ""}), ("a=b\r\nc=d", {"a": "b", "c": "d"}),
    ("a={ b = c , d }", {"a": {1: "d", "b": "c"}}), ("a={b\n}", {"a": {1: "b", 2: ""}}),
    ("a=(b)", {"a": "(b)"}), ("a=#", {"a": "#"}), ("a=\\", {"a": "\\"}),
    ("}", {1: ""}), ("a=}", {"a": ""}), ("a=b},c=d", {"a": "b"}), ("a={b}},c", {"a": {1: "b"}}),
    ("  'x'  =  'y'  ", {"x": "y"}),
    ("a==b", "ERROR: arguments did not parse!"), ("a=b=c", "ERROR: arguments did not parse!"),
    ('a="x"y', "ERROR: arguments did not parse!"), ("a={b}c", "ERROR: arguments did not parse!"),
    ("a={b", "ERROR: arguments did not parse!"), ("{", "ERROR: arguments did not parse!"),
    ("{a=b}=c", "ERROR: arguments did not parse!"), ("a=b;c=d", "ERROR: arguments did not parse!"),
    ("a=b{c}", "ERROR: arguments did not parse!"), ('a="""', "ERROR: arguments did not parse!"),
])
def test_observed_cases(text, expected):
    assert ours(text) == expected


def test_parse_error_is_a_user_error():
    with pytest.raises(ScriptArgsError) as caught:
        parse_script_args("a=b=c")
    assert str(caught.value) == "arguments did not parse!"
    assert isinstance(caught.value, UserError)


def test_deep_nesting_does_not_overflow():
    value = parse_script_args("a=" + "{" * 5000 + "x" + "}" * 5000).as_lua_ready
    assert value is not None
    with pytest.raises(ScriptArgsError):
        parse_script_args("{" * 5000)


@settings(max_examples=1000, deadline=None)
@given(st.text())
def test_arbitrary_text_parses_or_raises(text):
    try:
        result = parse_script_args(text)
    except ScriptArgsError:
        return
    assert isinstance(result, ScriptArgs)
    result.as_lua_ready()


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="ab=,{}\"'\\ \t\n\r.", max_size=30))
def test_syntax_like_text_parses_or_raises(text):
    try:
        parse_script_args(text).as_lua_ready()
    except ScriptArgsError:
        pass


# ---------------------------------------------------------------------------------------------
# The arguments file


def test_read_args_file(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "args.txt").write_text("a=1,b=2,,,")
    (data / "nl.txt").write_text("a=1,,\n")
    (data / "sub").mkdir()
    find = {"args.txt": data / "args.txt", "nl.txt": data / "nl.txt", "sub": data / "sub"}.get
    assert read_args_file("args.txt", find) == "a=1,b=2"  # trailing commas removed
    assert read_args_file("nl.txt", find) == "a=1,,\n"  # only at the very end
    assert read_args_file(str(data / "args.txt"), lambda _: None) == "a=1,b=2"
    with pytest.raises(ScriptArgsError) as caught:
        read_args_file("missing.txt", find)
    assert str(caught.value) == "no path to file/directory: missing.txt is not a file"
    with pytest.raises(ScriptArgsError, match=r"^no path to file/directory: /nonexistent/x "):
        read_args_file("/nonexistent/x", find)
    with pytest.raises(ScriptArgsError) as caught:
        read_args_file("sub", find)
    assert str(caught.value) == f"{data / 'sub'} is not a file"


def test_combine_args():
    assert combine_args(None, None) == ""
    assert combine_args(None, "a=1") == "a=1"
    assert combine_args("a=1\n", None) == "a=1\n,"
    assert combine_args("a=1", "a=2") == "a=1,a=2"
    assert ours(combine_args("a=1\n", "a=9,z")) == {1: "", 2: "z", "a": "9"}  # [obs]
    assert ours(combine_args("", None)) == {1: "", 2: ""}  # an empty file [obs]


# ---------------------------------------------------------------------------------------------
# get_script_args (stdnse's lookup rules, §3.2)


def test_get_script_args():
    args = parse_script_args("timeout=5,flag,a.b=1,b=2,t={1,k=v},empty=")
    get = lambda *names: get_script_args(args, *names)
    assert get("timeout") == ("5",)
    assert get("x.y.timeout") == ("5",)  # the part after the last dot
    assert get("flag") == (1,)  # in the array part
    assert get("q.flag") == (1,)
    assert get("a.b") == ("1",)  # a qualified key beats the unqualified one
    assert get(".b") == ("2",)
    assert get("t") == ({1: "1", "k": "v"},)
    assert get("empty") == ("",)  # "" is truthy in Lua
    assert get("nope", "timeout", ("x", "flag")) == (None, "5", 1)
    assert get(("nope1", "nope2")) == (None,)
    assert get_script_args(args.as_lua_ready(), "timeout") == ("5",)
    assert get_script_args(parse_script_args("y=1,z=2"), ("x.y", "z")) == ("1",)
    assert get_script_args(parse_script_args("y,z=2"), ("x.y", "z")) == (1,)
    assert get_script_args(parse_script_args("b=2,a.b"), "a.b") == (1,)
    assert get_script_args(parse_script_args("=x"), "a.", "") == ("x", "x")
    assert get_script_args(parse_script_args(""), "x") == (None,)


QUERIES = [
    ("timeout",), ("dump-args.timeout",), ("x.y.timeout",), (("x.y", "z"),), (("z", "x.y"),),
    ("flag",), ("q.flag",), ("a.b",), ("empty",), ("t",), ("p.t",),
    ("timeout", "flag", "nope"), (("nope1", "nope2"),), ("1",), ("a.",), (".b",), ("",),
]
GET_ARGS = ["timeout=5", "dump-args.timeout=7,timeout=5", "y=1,z=2", "x.y=1,z=2", "flag",
            "b=2,a.b", "a.b=1,b=2", "empty=", "t={1,k=v}", "timeout=3,flag,b",
            "1=x,y,b=bee", "x.y", "y,z=2", "=x", ",", "a.", "t,t=1"]


def test_get_script_args_matches_nmap(nmap_path, tmp_path):
    script = write_dump(tmp_path, QUERIES)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda a: run_nmap(nmap_path, script, "--script-args", a),
                                GET_ARGS))
    for text, (table, expected) in zip(GET_ARGS, results):
        assert ours(text) == table, text
        got = [get_script_args(parse_script_args(text), *query) for query in QUERIES]
        assert got == expected, text


# ---------------------------------------------------------------------------------------------
# Parsing compared with Nmap

CASES = [
    "a", "a,b", "a b", " a ", "a\tb", "a=", "=a", "a==b", "a=b=c", "a={}", "{}", "{a}",
    "a={b={c=d}}", "a,", ",a", ",", ",,", "a\nb", "a=1\nb=2", "a=1\n\nb=2", "\n", 'a="x,y"',
    "a='x\"y'", "a='x\\'y'", 'a="x\\\\y"', 'a="x\\ny"', '"a b"=c', "a.b.c=d", "a-b=c", "a/b=c",
    "a b=c", " a = b ", "a= 'x' ", "a=x'y", 'a=x"y', 'a="x"y', "a=b,a=c", "a=b,a={c}", "1=x",
    "[1]=x", "a=\u00e9", "\u00e9=b", "a=x y,b", 'a="unterminated', "a={,}", "a={,,}", "a={b,}",
    "a={b\nc}", "a={ b = c , d }", "a=b\r", "a=b\r\nc=d", "a=\x0b", "a=b;c=d", "a=(b)",
    "a=[b]", "a=#", "a=\\", 'a=\\"', "x = two words ", 'a=""', "''", '""=x', "a=b\n,c",
    "a  =  b  ,  c  ", 'a="x\\\\"', 'a="\\a"', "a=\"x\\'y\"", "a='x\\\"y'", "a=x\\y",
    'a="x\\"y"', " ", "\t", "a=b\n", "a\n\n", "a \n , b", "a={b={}}", "{a=b}=c", 'a={"x,y"}',
    "a= {b}", "a={b} ", "a={b}c", "a=b}", "a={b", "}", '"a"', '" a "=b', 'a="x\ny"',
    'a="x" ', 'a = "x" \n', 'a="x\\"', 'a="x,y', "a={\nb}", "a={b\n}", "a={b }", "a={ }",
    'a={"x" }', "a=b{c}", 'a=b"c"', "a=}", '"x"}', "a={b=}", "a={=b}", "a={b={c}}}x",
    "a=b\n}", "a=b,}", 'a"b"=c', "a='x'  ,b", "  'x'  =  'y'  ", "a{b}", '"a=b', "a={b}=c",
    "{}{}", "{},{}", "a={{}}", "'a'b", "'a' b", "a=''x", "a=b,,", "\x0b", "a\x0b=\x0bb",
    "a='\n'", 'a="\\\\\\""', "{a=b", "a={'x'='y'}", "a={'x\\'y'}", "a={b}}", "}}", "{",
    "a=b}xyz", "a=b},c=d", "a\n=b", "a=\nb", "a=\n", "a =\tb\t", "a\x0cb", "\x0ca", "\ra\r",
    "\n\n", "\n,", ",\n", "a,b=c,d,e={f,g=h,{i}},j", "\u00a0a\u00a0", "x=y,,",
]


def fuzz_cases(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = ["a", "b", "=", ",", "{", "}", '"', "'", "\\", "\n", " ", "\t", "\r", "x.y"]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10)))
            for _ in range(count)]


@pytest.fixture(scope="module")
def nmap_parses(nmap_path, tmp_path_factory):
    """{text: what Nmap parsed} for CASES and 50 random texts, run in parallel."""
    script = write_dump(tmp_path_factory.mktemp("dump"))
    texts = list(dict.fromkeys(CASES + fuzz_cases(50, 20251126)))
    with ThreadPoolExecutor(8) as pool:
        results = pool.map(lambda t: run_nmap(nmap_path, script, "--script-args", t), texts)
        return {text: (result if isinstance(result, str) else result[0])
                for text, result in zip(texts, results)}


def test_parsing_matches_nmap(nmap_parses):
    mismatches = {text: (expected, ours(text)) for text, expected in nmap_parses.items()
                  if ours(text) != expected}
    assert mismatches == {}
    assert sum(isinstance(v, str) for v in nmap_parses.values()) >= 10  # errors covered too


@pytest.mark.parametrize("content", [
    "a=1\n", "a=1,,\n", "a=1,\n\n", "a=1\nb=2", "", "a=1,b=2,,,", "\n", "a=1\n,\n", "a=1, ,\n",
])
@pytest.mark.parametrize("cli", [None, "a=9,z"])
def test_args_file_matches_nmap(nmap_path, tmp_path, content, cli):
    data = tmp_path / "data"
    data.mkdir()
    (data / "args.txt").write_text(content)
    script = write_dump(tmp_path)
    options = ["--datadir", str(data), "--script-args-file", "args.txt"]
    if cli is not None:
        options += ["--script-args", cli]
    expected, _ = run_nmap(nmap_path, script, *options)
    text = read_args_file("args.txt", lambda name: data / name if (data / name).exists()
                          else None)
    assert ours(combine_args(text, cli)) == expected


def test_args_file_errors_match_nmap(nmap_path, tmp_path):
    script = write_dump(tmp_path)
    (tmp_path / "here.txt").write_text("a=1")
    (tmp_path / "dir").mkdir()
    find = lambda name: None
    for name in ["here.txt", "missing.txt", str(tmp_path / "dir"), str(tmp_path / "nope")]:
        expected = run_nmap(nmap_path, script, "--script-args-file", name)
        with pytest.raises(ScriptArgsError) as caught:
            read_args_file(name, find)
        assert "ERROR: " + str(caught.value) == expected  # the current directory is not searched
