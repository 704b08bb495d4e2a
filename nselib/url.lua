---
-- URLs: parsing into parts, building from parts, resolving relative URLs, escaping, and
-- query strings.
--
-- A parsed URL is a table with some of these fields (absent parts are nil):
-- <code>scheme</code> (lower case), <code>authority</code>, <code>userinfo</code>,
-- <code>user</code>, <code>password</code>, <code>host</code>, <code>ascii_host</code> (the
-- host in IDNA/Punycode ASCII form, lower case), <code>port</code> (a number),
-- <code>path</code> (always present), <code>params</code>, <code>query</code>,
-- <code>fragment</code>, <code>is_folder</code> (the path ends in <code>/</code>) and
-- <code>extension</code> (of the path's last segment). They stand for
-- <code>scheme://userinfo@host:port/path;params?query#fragment</code>.
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values are
-- those scripts written for Nmap expect.
--
-- @class module
-- @name url

local error, ipairs, pairs, pcall, tonumber, tostring, type =
      error, ipairs, pairs, pcall, tonumber, tostring, type
local byte, char, find, format, gmatch, gsub, lower, match, sub, upper =
      string.byte, string.char, string.find, string.format, string.gmatch, string.gsub,
      string.lower, string.match, string.sub, string.upper
local concat = table.concat
local utf8_codes = utf8.codes

local _ENV = {}

local DEFAULT_PORTS = {http = 80, https = 443}
local DEFAULT_SCHEMES = {[80] = "http", [443] = "https"}

local function check_string(value, n, fname)
  if type(value) ~= "string" and type(value) ~= "number" then
    error(format("bad argument #%d to '%s' (string expected, got %s)", n, fname, type(value)),
          3)
  end
  return tostring(value)
end

-- ---------------------------------------------------------------------------------------------
-- Escaping.

local function hex_escape(c)
  return format("%%%02X", byte(c))
end

--- Escape a string for a URL: every byte except ASCII letters, digits and <code>-._~</code>
-- becomes <code>%XX</code> (upper-case hex).
-- @param s The string.
-- @return The escaped string.
local function escape_string(s)
  s = check_string(s, 1, "escape")
  return (gsub(s, "[^A-Za-z0-9%-%._~]", hex_escape))
end
escape = escape_string

local function unescape_string(s)
  return (gsub(s, "%%(%x%x)", function(hex) return char(tonumber(hex, 16)) end))
end

--- Undo URL escaping: every <code>%XX</code> (hex) becomes the byte it stands for. Other
-- text, <code>+</code> included, is left as it is.
-- @param s The escaped string.
-- @return The unescaped string.
function unescape(s)
  s = check_string(s, 1, "unescape")
  return unescape_string(s)
end

-- Escapes of unreserved characters are decoded, the hex digits of the others upper-cased.
local function normalize_escapes(s)
  return (gsub(s, "%%(%x%x)", function(hex)
    local c = char(tonumber(hex, 16))
    if find(c, "^[A-Za-z0-9%-%._~]$") then return c end
    return "%" .. upper(hex)
  end))
end

-- Characters a path segment keeps as they are (RFC 3986 pchar without "%").
local function protect_segment(s)
  return (gsub(s, "[^A-Za-z0-9%-%._~!%$&'%(%)%*%+,;=:@]", hex_escape))
end

-- ---------------------------------------------------------------------------------------------
-- Internationalized host names (IDNA): lower case, then Punycode for non-ASCII labels.

-- Upper-case ranges folded to lower case: {first, last, step, offset}.
local CASE_FOLD = {
  {0x41, 0x5A, 1, 32}, {0xC0, 0xD6, 1, 32}, {0xD8, 0xDE, 1, 32},
  {0x100, 0x12E, 2, 1}, {0x132, 0x136, 2, 1}, {0x139, 0x147, 2, 1}, {0x14A, 0x176, 2, 1},
  {0x178, 0x178, 1, -121}, {0x179, 0x17D, 2, 1},
  {0x386, 0x386, 1, 38}, {0x388, 0x38A, 1, 37}, {0x38C, 0x38C, 1, 64}, {0x38E, 0x38F, 1, 63},
  {0x391, 0x3A1, 1, 32}, {0x3A3, 0x3AB, 1, 32},
  {0x400, 0x40F, 1, 80}, {0x410, 0x42F, 1, 32}, {0x460, 0x480, 2, 1}, {0x48A, 0x4BE, 2, 1},
  {0x4C1, 0x4CD, 2, 1}, {0x4D0, 0x52E, 2, 1},
  {0xFF10, 0xFF19, 1, 0x30 - 0xFF10}, {0xFF21, 0xFF3A, 1, 0x61 - 0xFF21},
  {0xFF41, 0xFF5A, 1, 0x61 - 0xFF41},
}
local DOTS = {[0x3002] = true, [0xFF0E] = true, [0xFF61] = true}

local function fold(cp)
  for _, range in ipairs(CASE_FOLD) do
    local first, last, step, offset = range[1], range[2], range[3], range[4]
    if cp >= first and cp <= last and (cp - first) % step == 0 then return cp + offset end
  end
  return cp
end

-- RFC 3492 Punycode encoding of an array of code points.
local BASE, TMIN, TMAX, SKEW, DAMP = 36, 1, 26, 38, 700

local function adapt(delta, numpoints, first)
  delta = first and delta // DAMP or delta // 2
  delta = delta + delta // numpoints
  local k = 0
  while delta > ((BASE - TMIN) * TMAX) // 2 do
    delta = delta // (BASE - TMIN)
    k = k + BASE
  end
  return k + (BASE - TMIN + 1) * delta // (delta + SKEW)
end

local function digit_char(d)
  return char(d < 26 and d + 97 or d + 22)
end

local function punycode(cps)
  local out = {}
  for _, cp in ipairs(cps) do
    if cp < 0x80 then out[#out + 1] = char(cp) end
  end
  local basic = #out
  local handled = basic
  if basic > 0 then out[#out + 1] = "-" end
  local n, delta, bias = 0x80, 0, 72
  while handled < #cps do
    local m = 0x7FFFFFFF
    for _, cp in ipairs(cps) do
      if cp >= n and cp < m then m = cp end
    end
    delta = delta + (m - n) * (handled + 1)
    n = m
    for _, cp in ipairs(cps) do
      if cp < n then delta = delta + 1 end
      if cp == n then
        local q = delta
        local k = BASE
        while true do
          local t = k <= bias and TMIN or (k >= bias + TMAX and TMAX or k - bias)
          if q < t then break end
          out[#out + 1] = digit_char(t + (q - t) % (BASE - t))
          q = (q - t) // (BASE - t)
          k = k + BASE
        end
        out[#out + 1] = digit_char(q)
        bias = adapt(delta, handled + 1, handled == basic)
        delta = 0
        handled = handled + 1
      end
    end
    delta = delta + 1
    n = n + 1
  end
  return concat(out)
end

local HYPHEN = 0x2D

-- Call f with each code point of a UTF-8 string; false when the string is not valid UTF-8.
local function each_codepoint(s, f)
  return pcall(function()
    for _, cp in utf8_codes(s) do f(cp) end
  end)
end

-- One label's ASCII form, or nil when it is not acceptable.
local function label_to_ascii(cps)
  local n = #cps
  if n > 0 and (cps[1] == HYPHEN or cps[n] == HYPHEN or cps[3] == HYPHEN or
                cps[4] == HYPHEN) then
    return nil
  end
  local ascii = true
  for _, cp in ipairs(cps) do
    if cp >= 0x80 then ascii = false break end
  end
  if ascii then
    local chars = {}
    for i, cp in ipairs(cps) do chars[i] = char(cp) end
    return concat(chars)
  end
  return "xn--" .. punycode(cps)
end

-- The host name in ASCII (IDNA) form, or nil when it cannot be converted.
local function host_to_ascii(host)
  local labels, current = {}, {}
  local ok = each_codepoint(host, function(cp)
    if cp == 0x2E or DOTS[cp] then
      labels[#labels + 1] = current
      current = {}
    elseif cp == 0xDF then  -- sharp s
      current[#current + 1] = 0x73
      current[#current + 1] = 0x73
    else
      current[#current + 1] = fold(cp)
    end
  end)
  if not ok then return nil end
  labels[#labels + 1] = current
  local out = {}
  for i, cps in ipairs(labels) do
    local label = label_to_ascii(cps)
    if not label then return nil end
    out[i] = label
  end
  return concat(out, ".")
end

-- ---------------------------------------------------------------------------------------------
-- Parsing and building.

--- Parse a URL into its parts (see the module description for the fields).
-- Escapes of unreserved characters (<code>%41</code>) are decoded first, and the hex digits of
-- other escapes upper-cased.
-- @param url The URL string.
-- @param default A table of default parts, copied into the result before parsing.
-- @return The table of parts.
-- @usage url.parse("http://example.com:8080/a/b.php?x=1").port --> 8080
local function parse_url(url, default)
  url = check_string(url, 1, "parse")
  local parsed = {}
  for k, v in pairs(default or {}) do parsed[k] = v end
  url = normalize_escapes(url)

  local hash = find(url, "#", 1, true)
  if hash then
    parsed.fragment = sub(url, hash + 1)
    url = sub(url, 1, hash - 1)
  end
  local scheme, rest = match(url, "^(%w[%w%+%-%.]*):(.*)$")
  if scheme then
    parsed.scheme = lower(scheme)
    url = rest
  end
  local authority
  authority, rest = match(url, "^//([^/]*)(.*)$")
  if authority then
    parsed.authority = authority
    url = rest
  end
  local question = find(url, "?", 1, true)
  if question then
    parsed.query = sub(url, question + 1)
    url = sub(url, 1, question - 1)
  end
  local semicolon = find(url, ";", 1, true)
  if semicolon then
    parsed.params = sub(url, semicolon + 1)
    url = sub(url, 1, semicolon - 1)
  end
  parsed.path = url

  if authority then
    local userinfo, hostport = match(authority, "^([^@]*)@(.*)$")
    if userinfo then
      parsed.userinfo = userinfo
      authority = hostport
      local user, password = match(userinfo, "^([^:]*):(.*)$")
      if user then
        parsed.user, parsed.password = user, password
      else
        parsed.user = userinfo
      end
    end
    local host, port = match(authority, "^(.*):(%d+)$")
    if host then
      parsed.port = tonumber(port)
      authority = host
    end
    if authority ~= "" then
      parsed.host = authority
      parsed.ascii_host = host_to_ascii(authority)
    end
  end

  parsed.is_folder = sub(url, -1) == "/"
  parsed.extension = match(url, "%.([^/%.]+)$")
  return parsed
end
parse = parse_url

--- Split a path into its segments, unescaping each.
-- @param path The path string.
-- @return An array of segments, with <code>is_absolute = 1</code> when the path starts with
--         <code>/</code> and <code>is_directory = 1</code> when it ends with one. Empty segments
--         are dropped.
local function split_path(path)
  path = check_string(path or "", 1, "parse_path")
  local parsed = {}
  for segment in gmatch(path, "[^/]+") do
    parsed[#parsed + 1] = unescape_string(segment)
  end
  if sub(path, 1, 1) == "/" then parsed.is_absolute = 1 end
  if sub(path, -1) == "/" then parsed.is_directory = 1 end
  return parsed
end
parse_path = split_path

local function build_path_string(parsed, unsafe)
  local n = #parsed
  local segments = {}
  for i = 1, n do
    local segment = tostring(parsed[i])
    segments[i] = unsafe and segment or protect_segment(segment)
  end
  local path = concat(segments, "/")
  if n > 0 and parsed.is_directory then path = path .. "/" end
  if parsed.is_absolute then path = "/" .. path end
  return path
end

--- Join path segments into a path, escaping the characters a segment may not hold.
-- @param parsed An array of segments with optional <code>is_absolute</code> and
--               <code>is_directory</code> flags (as <code>parse_path</code> gives).
-- @param unsafe If true, segments are used as they are, unescaped.
-- @return The path string.
function build_path(parsed, unsafe)
  return build_path_string(parsed, unsafe)
end

local function build_url(parsed)
  local url = build_path_string(split_path(parsed.path or ""))
  if parsed.params then url = url .. ";" .. parsed.params end
  if parsed.query then url = url .. "?" .. parsed.query end
  local authority = parsed.authority
  if parsed.host then
    authority = parsed.host
    if parsed.port then authority = authority .. ":" .. tostring(parsed.port) end
    local userinfo = parsed.userinfo
    if parsed.user then
      userinfo = parsed.user
      if parsed.password then userinfo = userinfo .. ":" .. parsed.password end
    end
    if userinfo then authority = userinfo .. "@" .. authority end
  end
  if authority then url = "//" .. authority .. url end
  if parsed.scheme then url = parsed.scheme .. ":" .. url end
  if parsed.fragment then url = url .. "#" .. parsed.fragment end
  return url
end

--- Build a URL string from its parts (the reverse of <code>parse</code>). <code>host</code>,
-- <code>port</code>, <code>user</code> and <code>password</code> take precedence over
-- <code>authority</code> and <code>userinfo</code>. The path is re-escaped segment by segment.
-- @param parsed The table of parts.
-- @return The URL string.
function build(parsed)
  return build_url(parsed)
end

-- Resolve "." and ".." segments in a merged path (RFC 3986 section 5.2.4; empty segments
-- count as segments). A relative path stays relative.
local function remove_dots(input)
  local relative = sub(input, 1, 1) ~= "/"
  local output = {}  -- pieces "/segment" (or "segment" at the start of a relative path)
  while input ~= "" do
    if sub(input, 1, 3) == "../" then
      input = sub(input, 4)
    elseif sub(input, 1, 2) == "./" then
      input = sub(input, 3)
    elseif sub(input, 1, 3) == "/./" then
      input = sub(input, 3)
    elseif input == "/." then
      input = "/"
    elseif sub(input, 1, 4) == "/../" then
      input = sub(input, 4)
      output[#output] = nil
    elseif input == "/.." then
      input = "/"
      output[#output] = nil
    elseif input == "." or input == ".." then
      input = ""
    else
      local piece = match(input, "^/?[^/]*")
      output[#output + 1] = piece
      input = sub(input, #piece + 1)
    end
  end
  local path = concat(output)
  if relative and sub(path, 1, 1) == "/" then path = sub(path, 2) end
  return path
end

--- Resolve a URL relative to a base URL (RFC 2396 rules): a relative URL with a scheme is
-- returned as it is; otherwise the missing parts come from the base, the path is merged with
-- the base's directory, and "." and ".." segments are resolved.
-- @param base_url The base URL (a string, or a table as <code>parse</code> gives).
-- @param relative_url The relative URL string.
-- @return The absolute URL string.
-- @usage url.absolute("http://a/b/c", "../d") --> "http://a/d"
function absolute(base_url, relative_url)
  local base
  if type(base_url) == "table" then
    base = base_url
  else
    base = parse_url(check_string(base_url, 1, "absolute"))
  end
  relative_url = check_string(relative_url, 2, "absolute")
  local relative = parse_url(relative_url)
  if relative.scheme then return relative_url end
  relative.scheme = base.scheme
  if not relative.authority then
    relative.authority = base.authority
    relative.host, relative.port = base.host, base.port
    relative.userinfo, relative.user, relative.password = base.userinfo, base.user,
                                                          base.password
    local path = relative.path
    if sub(path, 1, 1) ~= "/" then
      local base_path = base.path or ""
      local directory = match(base_path, "^(.*/)") or ""
      if directory == "" and base.authority then directory = "/" end
      path = directory .. path
    end
    relative.path = remove_dots(path)
  end
  return build_url(relative)
end

--- Split a query string into a table of names and values (both unescaped). Pairs are
-- separated by <code>&amp;</code> (or the HTML entity <code>&amp;amp;</code>); a name without
-- <code>=</code> gets the empty string; a repeated name keeps its last value.
-- @param query The query string (without the <code>?</code>).
-- @return The table of names to values.
function parse_query(query)
  query = check_string(query, 1, "parse_query")
  local parsed = {}
  query = gsub(query, "&amp;", "&")
  for piece in gmatch(query .. "&", "([^&]*)&") do
    local name, value = match(piece, "^([^=]*)=?(.*)$")
    parsed[unescape_string(name)] = unescape_string(value)
  end
  return parsed
end

--- Build a query string from a table of names and values (both escaped).
-- @param query The table of names to values.
-- @return The query string, <code>name=value</code> pairs joined with <code>&amp;</code>.
function build_query(query)
  local pieces = {}
  for name, value in pairs(query) do
    pieces[#pieces + 1] = escape_string(name) .. "=" .. escape_string(value)
  end
  return concat(pieces, "&")
end

--- The default port of a URL scheme.
-- @param scheme The scheme (any case).
-- @return 80 for http, 443 for https, else nil.
function get_default_port(scheme)
  if type(scheme) ~= "string" then return nil end
  return DEFAULT_PORTS[lower(scheme)]
end

--- The default URL scheme for a port number.
-- @param port A port table (its <code>number</code> is used) or a port number.
-- @return "http" for 80, "https" for 443, else nil.
function get_default_scheme(port)
  local number = port
  if type(port) == "table" then number = port.number end
  return DEFAULT_SCHEMES[number]
end

return _ENV
