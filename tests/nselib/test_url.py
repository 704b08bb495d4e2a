"""nselib/url.lua: parsing, building, relative resolution, escaping and query strings,
compared with Nmap's (where Nmap does not fail or mangle its output: see the last tests)."""
from nse_support import LUA_OUTPUT, run_lua, run_lua_nmap

PRELUDE = r'''
local url = require "url"
''' + LUA_OUTPUT + r'''local function dumpt(t)
  if type(t) ~= "table" then return tostring(t) end
  local ks = {}
  for k, v in pairs(t) do
    ks[#ks + 1] = tostring(k) .. "=" .. (type(v) == "table" and "{" .. dumpt(v) .. "}" or
                  tostring(v)) .. "(" .. tostring(math.type(v) or type(v)):sub(1, 1) .. ")"
  end
  table.sort(ks)
  return table.concat(ks, ", ")
end
local function arr(t)
  local r, extra = {}, {}
  for i, v in ipairs(t) do r[i] = "[" .. tostring(v) .. "]" end
  for k, v in pairs(t) do
    if type(k) ~= "number" then extra[#extra + 1] = k .. "=" .. tostring(v) end
  end
  table.sort(extra)
  return #t .. ":" .. table.concat(r) .. (#extra > 0 and " {" .. table.concat(extra, ",") .. "}" or "")
end
local function try(f, ...)
  local r = table.pack(pcall(f, ...))
  if not r[1] then return "ERR " .. tostring(r[2]):gsub("^.-:%d+: ", "") end
  return tostring(r[2])
end
'''

PARSE = PRELUDE + r'''
for _, u in ipairs{"http://www.example.com/a/b/c.html?x=1&y=2#frag",
  "https://user:pass@host:8080/path;params?q#f", "//host/path", "/only/path", "relative/path",
  "path.php", "http://host", "http://host/", "http://host:/", "http://[::1]:80/x",
  "ftp://user@host/dir/", "mailto:someone@example.com", "http://host/a%20b/c.tar.gz?",
  "http://host/?#", "HTTP://HOST/X", "http://h/dir/file.", "http://h/.htaccess", "http://h/a/b/",
  "", "http://h:abc/", "http://user@h@x/", "?q=1", "#f", "http://h/a;b;c",
  "http://xn--nxasmq6b.com/", "http://\195\169xample.com/", "http://h/a?b=c?d",
  "http://h/file.PHP", "http://h/a/..", "h:80", "http://user:@h/", "http://:pass@h/",
  "http://h?x", "http://h#x", "//h", "http:/path", "http:path", "1http://x", "a+b.c-d://x",
  " http://h/ ", "http://h/a.php/", "http://h/x.y.z", "http://h/a.b/c",
  "http://h/%41%42?%41=%42", "http://h:0080/", "http://h/a b", "file:///etc/passwd",
  "http://h/.", "http://h/a.b;c.d", "http://www.ex-ample.com:443", "http://a..b/",
  "http://::1/", "http://a:1:2/", "http://h/a?b#c#d", "http://h:8a/",
  "http://us%41er:p%41ss@h%41st/", "http://h/a;p%41r"} do
  p(u, dumpt(url.parse(u)))
end
p(dumpt(url.parse("path", {scheme = "http", host = "dflt", port = 81})))
for _, s in ipairs{"%7e", "%7E", "%2f", "%2F", "%2e", "%5F", "%61", "%2d", "%20", "%25", "%3a",
                   "%3F", "%4a%4A", "%zz", "%4", "%C3%A9", "%30"} do
  local r = url.parse("http://h/" .. s .. "?q=" .. s .. "#" .. s)
  p(s, r.path, r.query, r.fragment)
end
return done()
'''

HOSTS = PRELUDE + r'''
-- ascii_host: IDNA (lower case, Punycode), and Nmap's hyphen rules
for _, h in ipairs{"a-b.com", "ab-c.com", "abc-d.com", "my-site.com", "abcd-e", "a-", "-a",
  "ab--c", "abcd--e", "a.b-c", "A-B", "www.ex-ample.com", "ex-ample", "xn--bcher-kva", "x-y",
  "xy-", "xy", "\195\169-a", "a_b-c", "1-2", "a.-b", "a-b-c", "abc-", "abcde-f-g",
  "xn--bcher-kva.com", "b\195\188cher.com", "B\195\156CHER.com", "B\195\188cher.COM",
  "\206\191\207\133\207\132\206\191\207\128\206\175\206\177.\206\180\207\128\206\184.gr",
  "10.0.0.1", "a_b.com", "m\195\188nchen.de.", "stra\195\159e", "\240\159\152\128",
  "a\227\128\130b", "\195\137COLE", "\208\159\209\128\208\184\208\178\208\181\209\130",
  "\206\145\206\146", "\197\129\195\179d\197\186", "\195\188\195\188\195\188\195\188",
  "\226\130\172", "a b", "abc\195\188",
  "\195\128\195\129\195\130\195\131\195\132\195\133\195\134\195\135\195\136\195\145\195\150",
  "\196\128\196\130\197\189\197\184", "Ab", "xn--"} do
  local r = url.parse("http://" .. h .. "/")
  p(r.host, r.ascii_host)
end
return done()
'''

CODEC = PRELUDE + r'''
local all = {}
for i = 0, 255 do all[#all + 1] = string.char(i) end
all = table.concat(all)
p(url.escape(all))
p(url.unescape(url.escape(all)) == all)
p(url.escape("a b+c/d?e=f&g"), url.unescape("a%20b+c%2Fd%3f%zz%4"), url.unescape("%41%42%4a"),
  url.unescape("a+b"), url.escape(12))
p(arr(url.parse_path("/a/b/c")), arr(url.parse_path("a/b/")), arr(url.parse_path("/")),
  arr(url.parse_path("")), arr(url.parse_path("/a%20b/c%2Fd")), arr(url.parse_path("//x//y")))
for _, a in ipairs{{{"a", "b c"}, true}, {{"a", "b/c"}, true}, {{"a", "b-c_d.e~f"}},
                   {{is_absolute = 1, "x"}}, {{is_directory = 1, "x"}}, {{}},
                   {{is_absolute = 1, is_directory = 1}}} do
  p(try(url.build_path, a[1], a[2]))
end
p(url.build_path(url.parse_path("/a/b/")))
p(dumpt(url.parse_query("a=1&b=2&c&d=&=e&a=3&x+y=z+w&p%20q=r%3Ds&amp;t=u")))
p(dumpt(url.parse_query("")), dumpt(url.parse_query("a=1&&b=2")), dumpt(url.parse_query("a=b=c")),
  dumpt(url.parse_query("?a=1")), dumpt(url.parse_query("a=1&amp;b=2&amp;c=3")),
  dumpt(url.parse_query("a=1&")))
p(url.build_query({a = "1"}), url.build_query({["a b"] = "c d&e"}), url.build_query({}),
  url.build_query({a = 1}), #url.build_query({b = "2", a = "1", c = "3"}))
p(url.get_default_port("http"), url.get_default_port("https"), url.get_default_port("HTTP"),
  url.get_default_port("ftp"), url.get_default_port(nil))
p(url.get_default_scheme({number = 80}), url.get_default_scheme({number = 443}),
  url.get_default_scheme({number = 8080}), url.get_default_scheme({number = 8080, service = "http"}),
  url.get_default_scheme({number = 8443, service = "https"}), url.get_default_scheme(443),
  url.get_default_scheme({number = 1, version = {service_tunnel = "ssl"}}),
  url.get_default_scheme({number = 443, service = "ftp"}))
return done()
'''

BUILD = PRELUDE + r'''
for _, u in ipairs{"http://www.example.com/a/b/c.html?x=1&y=2#frag",
  "https://user:pass@host:8080/path;params?q#f", "//host/path", "/only/path", "relative/path",
  "http://host", "http://[::1]:80/x", "http://h/?#", "HTTP://HOST/X", "", "?q=1", "#f",
  "http://user:@h/", "http://:pass@h/", "file:///etc/passwd", "http://h//x//y/"} do
  p(u, url.build(url.parse(u)))
end
p(url.build({scheme = "http", host = "h", path = "/p", query = "a=1"}))
p(url.build({scheme = "http", host = "h", port = 8080, path = "p"}))
p(url.build({scheme = "http", host = "h", user = "u", password = "p", path = "/"}))
p(url.build({scheme = "http", authority = "auth", host = "h", path = "/"}))
p(url.build({scheme = "http", host = "h", userinfo = "ui", user = "u", path = "/"}))
p(url.build({host = "h"}), url.build({path = "a", params = "p", fragment = "f"}), url.build({}))
p(url.build({scheme = "http", host = "h", path = "/", query = "a b"}))
local bases = {"http://a/b/c/d;p?q", "http://a/b/c/", "http://a/", "https://h:8443/x/y.html"}
local rels = {"g:h", "g", "./g", "g/", "/g", "//g", "?y", "g?y", "#s", "g#s", "g?y#s", ";x", "g;x",
  "g;x?y#s", "", ".", "./", "..", "../", "../g", "../..", "../../", "../../g", "../../../g",
  "../../../../g", "/./g", "/../g", "g.", ".g", "g..", "..g", "./../g", "./g/.", "g/./h",
  "g/../h", "g;x=1/./y", "g;x=1/../y", "g?y/./x", "g?y/../x", "g#s/./x", "g#s/../x", "http:g",
  "HTTP://X/y", "a/../../../b", "/a/./b/../c/"}
for _, b in ipairs(bases) do
  for _, r in ipairs(rels) do p(b, r, url.absolute(b, r)) end
end
p(url.absolute(url.parse("http://a/b/c"), "d"))
return done()
'''


def _compare(tmp_path, body):
    ours = run_lua(tmp_path, body)
    assert run_lua_nmap(tmp_path, body) == ours
    return ours.split("\n")


def test_parse_matches_nmap(tmp_path):
    lines = _compare(tmp_path, PARSE)
    assert lines[1] == (
        "https://user:pass@host:8080/path;params?q#f | ascii_host=host(s), "
        "authority=user:pass@host:8080(s), fragment=f(s), host=host(s), is_folder=false(b), "
        "params=params(s), password=pass(s), path=/path(s), port=8080(i), query=q(s), "
        "scheme=https(s), user=user(s), userinfo=user:pass(s)")
    assert "%2f | /%2F | q=%2F | %2F" in lines and "%7e | /~ | q=~ | ~" in lines


def test_ascii_hosts_match_nmap(tmp_path):
    lines = _compare(tmp_path, HOSTS)
    assert "b\\xC3\\xBCcher.com | xn--bcher-kva.com" in lines
    assert "my-site.com | nil" in lines and "a-b.com | a-b.com" in lines


def test_escaping_paths_queries_and_defaults_match_nmap(tmp_path):
    lines = _compare(tmp_path, CODEC)
    assert lines[2] == "a%20b%2Bc%2Fd%3Fe%3Df%26g | a b+c/d?%zz%4 | ABJ | a+b | 12"
    assert "http | https | nil | nil | nil | https | nil | https" in lines


def test_build_and_absolute_match_nmap(tmp_path):
    lines = _compare(tmp_path, BUILD)
    assert "http://a/b/c/d;p?q | ../g | http://a/b/g" in lines
    assert "http://a/b/c/d;p?q | g;x=1/../y | http://a/b/c/g;x=1/../y" in lines
    assert lines[-1] == "http://a/b/d"


def test_where_nmap_fails_or_mangles(tmp_path):
    # Nmap 7.93 raises for path characters outside its safe set, turns the safe ones into "1"
    # ("mailto:a1b" for "mailto:a@b"), and glues a relative path to a base without one
    # ("http://ag"). Ours escapes, keeps and resolves as RFC 3986 says.
    body = PRELUDE + r'''
    p(url.build_path({"a", "b c", "d/e"}), url.build_path({"a", "b:c@d!$&'()*+,;="}))
    p(url.build(url.parse("mailto:someone@example.com")), url.build(url.parse("http://h/a b")))
    p(url.build({scheme = "http", host = "h", path = "/a b/c%20d"}))
    p(url.absolute("http://a", "g"), url.absolute("http://a", "?y"), url.absolute("http://a", "../g"))
    p(url.parse("http://\255/").host, url.parse("http://\255/").ascii_host)
    p(try(url.parse, nil), try(url.escape, nil), try(url.absolute, nil, "x"))
    return done()'''
    assert run_lua(tmp_path, body).split("\n") == [
        "a/b%20c/d%2Fe | a/b:c@d!$&'()*+,;=",
        "mailto:someone@example.com | http://h/a%20b",
        "http://h/a%20b/c%20d",
        "http://a/g | http://a/?y | http://a/g",
        "\\xFF | nil",
        "ERR bad argument #1 to 'parse' (string expected, got nil) | "
        "ERR bad argument #1 to 'escape' (string expected, got nil) | "
        "ERR bad argument #1 to 'absolute' (string expected, got nil)"]


FUZZ = PRELUDE + r'''
local seed = 4242
local function rnd(n) seed = (seed * 1103515245 + 12345) % 2147483648 return seed % n + 1 end
local function gen(alphabet, maxlen)
  local t = {}
  for _ = 1, rnd(maxlen) - 1 do
    local k = rnd(#alphabet)
    t[#t + 1] = alphabet:sub(k, k)
  end
  return table.concat(t)
end
for _ = 1, 800 do
  local u = gen("ab:/?#@;=&%.-_~[]1234567890AF+ hx", 30)
  p(u, dumpt(url.parse(u)), dumpt(url.parse_query(u)), arr(url.parse_path(u)))
end
-- Relative resolution, with characters Nmap's path building leaves alone.
local bases = {"http://h/x/y/z", "http://h/x/y/", "https://u:p@h:81/a;p?q#f", "http://h/",
               "ftp://h/a/b/c/d/e", "/rel/base", "rel/base"}
for _ = 1, 1500 do
  local u = gen("ab/.?#;-_~1", 16)
  local b = bases[rnd(#bases)]
  p(b, u, url.absolute(b, u), url.build(url.parse(u)))
end
return done()
'''


def test_generated_urls_match_nmap(tmp_path):
    ours = run_lua(tmp_path, FUZZ)
    assert len(ours.split("\n")) >= 2300
    assert run_lua_nmap(tmp_path, FUZZ) == ours
