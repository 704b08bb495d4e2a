---
-- An HTTP/1.1 client for NSE scripts: requests (<code>get</code>, <code>head</code>,
-- <code>post</code>, <code>put</code>, <code>generic_request</code>, <code>get_url</code>),
-- pipelined batches (<code>pipeline_add</code> / <code>pipeline_go</code>), a response cache
-- shared by every script of a scan, redirects, basic and digest authentication, cookies,
-- chunked transfer coding and gzip content coding, plus helpers for the usual web-scanning
-- chores (404 detection, forms, dates, the site map in the registry).
--
-- Written for nsecluster from the NSE documentation and from watching what Nmap's library
-- does; the names, arguments and return values are those scripts written for Nmap expect.
--
-- Every request function returns a response table. When the exchange worked it holds:
-- * <code>status</code>: the status code, a number (<code>200</code>).
-- * <code>status-line</code>: the first line as the server sent it, line ending included.
-- * <code>version</code>: the protocol version of the status line (<code>"1.1"</code>).
-- * <code>header</code>: header values by lower-case name; repeated headers are joined with
--   <code>", "</code> and folded lines are joined with a space.
-- * <code>rawheader</code>: the header lines as sent, without their line endings, ending with
--   the empty line that closed the header.
-- * <code>cookies</code>: one table per <code>Set-Cookie</code> header, with <code>name</code>,
--   <code>value</code> and the attributes by lower-case name (<code>""</code> for flags).
-- * <code>rawbody</code>: the body as received (chunked coding removed).
-- * <code>body</code>: the body after content decoding (gzip).
-- * <code>ssl</code>: whether the connection used SSL/TLS.
-- * <code>decoded</code>, <code>undecoded</code>: the content codings that were and were not
--   removed (only when the response had a <code>Content-Encoding</code>).
-- * <code>truncated</code>: <code>true</code> when the body was cut at the size limit.
-- * <code>location</code>: the <code>Location</code> of each redirect met on the way.
-- When it did not work, <code>status</code> is nil, <code>status-line</code> says why, and
-- <code>incomplete</code> holds what had been parsed of the response before the failure.
--
-- Options (the <code>options</code> table the request functions take):
-- * <code>timeout</code>: socket timeout in milliseconds (default 30000).
-- * <code>header</code>: extra request headers by name; they replace defaults of the same name.
-- * <code>content</code>: the request body; a table is sent form-encoded.
-- * <code>cookies</code>: a cookie string, or an array of cookie tables (<code>name</code>,
--   <code>value</code>).
-- * <code>auth</code>: <code>{username=, password=, digest=}</code>; basic unless
--   <code>digest</code> is true.
-- * <code>bypass_cache</code>, <code>no_cache</code>, <code>no_cache_body</code>: do not read
--   the cache; do not store in it; store without the body.
-- * <code>redirect_ok</code>: false to not follow redirects, or a function
--   <code>f(host, port)</code> returning a function <code>g(url)</code> that says whether to
--   follow the redirect to the parsed <code>url</code>.
-- * <code>max_body_size</code>, <code>truncated_ok</code>: the body size limit (negative: none)
--   and whether a longer body is cut (true) or an error (false).
-- * <code>scheme</code>: "http" or "https" to use only that protocol.
-- * <code>any_af</code>: resolve a host name in any address family.
--
-- @args http.useragent The User-Agent header value (default: Nmap's NSE agent string).
-- @args http.host The Host header value to send instead of the target's name and port.
-- @args http.max-cache-size The size of the response cache in bytes (default 1000000).
-- @args http.max-body-size The body size limit in bytes (default 2097152; negative: none).
-- @args http.truncated-ok Cut bodies over the limit instead of failing.
-- @args http.pipeline The number of requests sent on one connection by pipelining.
-- @args http.max-pipeline The number of pipelined requests sent in one burst (default 40).
--
-- @class module
-- @name http

local nmap = require "nmap"
local stdnse = require "stdnse"
local url = require "url"
local base64 = require "base64"

local have_shortport, shortport = pcall(require, "shortport")
local have_openssl, openssl = pcall(require, "openssl")
local have_zlib, zlib = pcall(require, "zlib")

local error, ipairs, next, pairs, pcall, select, setmetatable, tonumber, tostring, type =
      error, ipairs, next, pairs, pcall, select, setmetatable, tonumber, tostring, type
local byte, char, find, format, gmatch, gsub, lower, match, rep, sub, upper =
      string.byte, string.char, string.find, string.format, string.gmatch, string.gsub,
      string.lower, string.match, string.rep, string.sub, string.upper
local concat, insert, remove, sort, unpack = table.concat, table.insert, table.remove,
      table.sort, table.unpack
local floor, huge, max, min, random = math.floor, math.huge, math.max, math.min, math.random
local os_time = os.time

local _ENV = {}
local M = _ENV

_NAME = "http"
_M = M

-- ---------------------------------------------------------------------------------------------
-- Settings.

local DEFAULT_USER_AGENT =
  "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)"
local DEFAULT_TIMEOUT = 30000          -- ms
local DEFAULT_MAX_BODY = 2097152       -- bytes
local DEFAULT_CACHE_SIZE = 1000000     -- bytes
local DEFAULT_PIPELINE = 40            -- requests in one burst
local MAX_REDIRECTS = 5
-- Beyond what Nmap limits: a status line plus header block (interim 1xx responses included)
-- longer than this is an error, so a server sending headers without end cannot hold a
-- script forever.
local HEADER_LIMIT = 1048576
-- The most of a cut body read and dropped to keep a pipelined connection usable.
local DRAIN_LIMIT = 16777216
local ERROR_PREFIX = "Error in next_response function; "
local SOCKET_ERROR = "Error creating socket."
local DIGEST_ERROR = "The target doesn't support digest auth or there was an error during request."
local REDIRECT_STATUS = {[300] = true, [301] = true, [302] = true, [303] = true, [307] = true}

local function script_arg(name)
  return (stdnse.get_script_args(name))
end

local function truthy_arg(value)
  if value == nil then return false end
  value = lower(tostring(value))
  return value ~= "false" and value ~= "0" and value ~= "no" and value ~= ""
end

--- The User-Agent header the library sends (script argument <code>http.useragent</code>, or
-- Nmap's NSE agent string).
USER_AGENT = script_arg("http.useragent") or DEFAULT_USER_AGENT

-- ---------------------------------------------------------------------------------------------
-- Small helpers.

local function trim(s)
  return (match(s, "^%s*(.-)%s*$"))
end

local function deep_copy(value, seen)
  if type(value) ~= "table" then return value end
  seen = seen or {}
  if seen[value] then return seen[value] end
  local copy = {}
  seen[value] = copy
  for k, v in next, value do copy[deep_copy(k, seen)] = deep_copy(v, seen) end
  return copy
end

local function shallow_copy(t)
  local copy = {}
  if type(t) == "table" then
    for k, v in next, t do copy[k] = v end
  end
  return copy
end

local hostname = stdnse.get_hostname

local function port_number(port)
  if type(port) == "table" then port = port.number end
  return tonumber(port)
end

local function error_response(message, partial)
  return {["status-line"] = message, header = {}, rawheader = {}, incomplete = partial}
end

local function debug(level, fmt, ...)
  local ok = pcall(stdnse.debug, level, fmt, ...)
  return ok
end

-- Form encoding: everything but letters, digits and -._~ is %XX.
local function form_escape(s)
  return (gsub(tostring(s), "[^A-Za-z0-9%-%._~]", function(c)
    return format("%%%02X", byte(c))
  end))
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  sort(keys, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    if ta == "number" or ta == "string" then return a < b end
    return tostring(a) < tostring(b)
  end)
  return keys
end

local function form_encode(t)
  local pieces = {}
  for _, k in ipairs(sorted_keys(t)) do
    pieces[#pieces + 1] = form_escape(k) .. "=" .. form_escape(t[k])
  end
  return concat(pieces, "&")
end

-- ---------------------------------------------------------------------------------------------
-- Building requests.

local function host_header(host, port)
  local forced = script_arg("http.host")
  if forced then return forced end
  local name = tostring(hostname(host) or "")
  if find(name, ":", 1, true) and not find(name, "^%[") then name = "[" .. name .. "]" end
  local number = port_number(port)
  if number == 80 or number == nil then return name end
  return name .. ":" .. number
end

local function cookie_string(cookies)
  if type(cookies) == "string" then return cookies end
  if type(cookies) ~= "table" then return nil end
  local pieces = {}
  for _, cookie in ipairs(cookies) do
    if type(cookie) == "table" and cookie.name then
      pieces[#pieces + 1] = tostring(cookie.name) .. "=" .. tostring(cookie.value or "")
    end
  end
  if #pieces == 0 then return nil end
  return concat(pieces, "; ")
end

local FIRST_HEADERS = {"Host", "User-Agent", "Connection"}

-- The request text. ``connection`` is the default Connection header value; ``authorization``
-- a ready Authorization value (digest), else options.auth gives basic authentication.
local function build_request(host, port, method, path, options, connection, authorization)
  options = options or {}
  local headers = {
    ["Host"] = host_header(host, port),
    ["User-Agent"] = M.USER_AGENT,
    ["Connection"] = connection or "close",
  }
  if type(options.header) == "table" then
    for name, value in pairs(options.header) do
      if type(name) == "string" and value ~= nil and value ~= false
         and type(value) ~= "table" then
        headers[name] = tostring(value)
      end
    end
  end
  local cookies = cookie_string(options.cookies)
  if cookies then headers["Cookie"] = cookies end
  if authorization then
    headers["Authorization"] = authorization
  elseif type(options.auth) == "table" and options.auth.username and not options.auth.digest then
    headers["Authorization"] = "Basic " .. base64.enc(tostring(options.auth.username) .. ":"
                                                       .. tostring(options.auth.password or ""))
  end
  local content = options.content
  if type(content) == "table" then
    content = form_encode(content)
    local has_type = false
    for name in pairs(headers) do
      if lower(name) == "content-type" then has_type = true end
    end
    if not has_type then headers["Content-Type"] = "application/x-www-form-urlencoded" end
  elseif content ~= nil then
    content = tostring(content)
  end
  if content then
    headers["Content-Length"] = tostring(#content)
  elseif method == "POST" then
    headers["Content-Length"] = "0"
  end

  local lines = {tostring(method) .. " " .. tostring(path) .. " HTTP/1.1"}
  local done = {}
  for _, name in ipairs(FIRST_HEADERS) do
    if headers[name] then
      lines[#lines + 1] = name .. ": " .. headers[name]
      done[name] = true
    end
  end
  for _, name in ipairs(sorted_keys(headers)) do
    if not done[name] then lines[#lines + 1] = name .. ": " .. headers[name] end
  end
  return concat(lines, "\r\n") .. "\r\n\r\n" .. (content or "")
end

-- ---------------------------------------------------------------------------------------------
-- Connections.

local LIKELY_SSL_PORTS = {
  [261] = true, [271] = true, [324] = true, [443] = true, [465] = true, [563] = true,
  [585] = true, [636] = true, [853] = true, [989] = true, [990] = true, [992] = true,
  [993] = true, [994] = true, [995] = true, [2221] = true, [2252] = true, [2376] = true,
  [3269] = true, [3389] = true, [4433] = true, [4911] = true, [5061] = true, [5986] = true,
  [6679] = true, [6697] = true, [8443] = true, [8883] = true, [9001] = true,
}
local LIKELY_SSL_SERVICES = {
  ftps = true, ["ftps-data"] = true, https = true, ["https-alt"] = true, imaps = true,
  ircs = true, ldapssl = true, ["ms-wbt-server"] = true, pop3s = true, ["sip-tls"] = true,
  smtps = true, telnets = true, ["tor-orport"] = true,
}

-- Whether SSL is the first thing to try on ``port``.
local function ssl_first(port)
  local t = type(port) == "table" and port or {number = port_number(port)}
  local probe = {number = port_number(t), protocol = "tcp", service = t.service,
                 version = type(t.version) == "table" and t.version or nil, state = "open"}
  if have_shortport and type(shortport) == "table" and type(shortport.ssl) == "function" then
    local ok, answer = pcall(shortport.ssl, nil, probe)
    if ok then return answer and true or false end
  end
  if probe.version and probe.version.service_tunnel == "ssl" then return true end
  return LIKELY_SSL_PORTS[probe.number] or LIKELY_SSL_SERVICES[probe.service] or false
end

local function timeout_of(options)
  local timeout = tonumber(options and options.timeout)
  if not timeout then return DEFAULT_TIMEOUT end
  return timeout
end

-- Where to connect: the host table or name (a name resolved in any family with any_af).
local function connect_target(host, options)
  if type(host) == "string" and options and options.any_af and not match(host, "^[%d.]+$")
     and not find(host, ":", 1, true) then
    local ok, addresses = nmap.resolve(host, "unspec")
    if ok and type(addresses) == "table" and addresses[1] then
      local family = find(addresses[1], ":", 1, true) and "inet6" or "inet"
      return addresses[1], family
    end
  end
  return host, nil
end

local function close(sock)
  if sock then pcall(sock.close, sock) end
end

-- Connect, send ``data`` and wait for the first answer, trying the protocols in turn as
-- Nmap does (SSL first on likely SSL ports). Returns the socket, the first data received and
-- the protocol; or nil and the reason.
local function open(host, port, data, options)
  local order
  local scheme = options and options.scheme and lower(tostring(options.scheme))
  if scheme == "https" then
    order = {"ssl"}
  elseif scheme == "http" then
    order = {"tcp"}
  elseif ssl_first(port) then
    order = {"ssl", "tcp"}
  else
    order = {"tcp", "ssl"}
  end
  local target, family = connect_target(host, options)
  local number = port_number(port)
  if not number then return nil, SOCKET_ERROR end
  local last
  for _, proto in ipairs(order) do
    local sock = family and nmap.new_socket("tcp", family) or nmap.new_socket()
    local timeout = timeout_of(options)
    pcall(sock.set_timeout, sock, timeout)
    local ok, status, err = pcall(sock.connect, sock, target, number, proto)
    if ok and status then
      -- Once connected, each read may wait twice the timeout (what Nmap's reads allow).
      if timeout > 0 then pcall(sock.set_timeout, sock, 2 * timeout) end
      ok, status, err = pcall(sock.send, sock, data)
      if ok and status then
        local first
        ok, status, first = pcall(sock.receive, sock)
        if ok and status then return sock, first, proto end
        err = first
      end
    end
    last = ok and err or status
    close(sock)
  end
  debug(1, "http: could not reach %s:%s (%s)", tostring(hostname(host)), tostring(number),
        tostring(last))
  return nil, SOCKET_ERROR
end

-- ---------------------------------------------------------------------------------------------
-- Reading from a socket: a buffer over receive() (the only read whose behaviour is the same
-- in every API profile).

local Reader = {}
Reader.__index = Reader

local function new_reader(sock, first)
  return setmetatable({sock = sock, buf = first or "", err = nil, used = 0}, Reader)
end

-- Receive one more chunk into the buffer; false (and self.err) when the socket fails.
function Reader:more()
  if self.err then return false end
  local ok, status, data = pcall(self.sock.receive, self.sock)
  if not ok then
    self.err = "ERROR"
    return false
  end
  if not status then
    self.err = data or "ERROR"
    return false
  end
  self.buf = self.buf .. data
  return true
end

-- One line, line ending included; nil and the error when the socket fails first, or "too
-- long" past ``limit`` bytes.
function Reader:line(limit)
  local start = 1
  while true do
    local nl = find(self.buf, "\n", start, true)
    if nl then
      local line = sub(self.buf, 1, nl)
      self.buf = sub(self.buf, nl + 1)
      self.used = self.used + nl
      return line
    end
    if limit and #self.buf > limit then return nil, "too long" end
    start = #self.buf + 1
    if not self:more() then return nil, self.err end
  end
end

-- Exactly ``n`` bytes (n may be math.huge: until the socket fails); on failure nil, the
-- error and what was read.
function Reader:bytes(n)
  if #self.buf >= n then
    local data = sub(self.buf, 1, n)
    self.buf = sub(self.buf, n + 1)
    return data
  end
  local pieces, have = {self.buf}, #self.buf
  self.buf = ""
  while have < n do
    if self.err then return nil, self.err, concat(pieces) end
    local ok, status, data = pcall(self.sock.receive, self.sock)
    if not ok or not status then
      self.err = ok and (data or "ERROR") or "ERROR"
      return nil, self.err, concat(pieces)
    end
    if have + #data > n then
      pieces[#pieces + 1] = sub(data, 1, n - have)
      self.buf = sub(data, n - have + 1)
      have = n
    else
      pieces[#pieces + 1] = data
      have = have + #data
    end
  end
  return concat(pieces)
end

-- ---------------------------------------------------------------------------------------------
-- Parsing responses.

-- One Set-Cookie value as a cookie table, or nil when it has no name=value.
local function parse_set_cookie(value)
  local first, rest = match(value, "^([^;]*)(.*)$")
  local name, cookie_value = match(first, "^([^=]*)=(.*)$")
  if not name then return nil end
  local cookie = {name = trim(name), value = trim(cookie_value)}
  for attribute in gmatch(rest, "[^;]+") do
    attribute = trim(attribute)
    if attribute ~= "" then
      local key, v = match(attribute, "^([^=]*)=(.*)$")
      if key then
        cookie[lower(trim(key))] = trim(v)
      else
        cookie[lower(attribute)] = ""
      end
    end
  end
  return cookie
end

-- A header value: spaces and tabs trimmed, each run of them made one space (other controls,
-- CR included, stay as they are, as in Nmap).
local function squeeze(value)
  return (gsub(match(value, "^[ \t]*(.-)[ \t]*$"), "[ \t]+", " "))
end

-- A header field name: no controls, spaces or separators (RFC 7230 tchar, plus 8-bit bytes).
local FIELD_NAME = "[^%c%(%)<>@,;:\\\"/%[%]%?={} ]+"

-- Fill response.header and response.cookies from the header lines (without their line
-- endings; ``crlf[i]`` tells whether line i ended with CR LF). A line of a bare name ended by
-- a lone LF takes the next line with it, as Nmap's parser does; past the last line that is
-- an error.
local function parse_headers(lines, crlf, response)
  local header, cookies = response.header, response.cookies
  local last
  local k, n = 1, #lines
  while k <= n do
    local line = lines[k]
    if match(line, "^[ \t]") then
      if last then header[last] = header[last] .. " " .. squeeze(line) end
    else
      local name, rest = match(line, "^(" .. FIELD_NAME .. ")(.*)$")
      if name and sub(rest, 1, 1) == ":" then
        name = lower(name)
        local value = squeeze(sub(rest, 2))
        if header[name] then
          header[name] = header[name] .. ", " .. value
        else
          header[name] = value
        end
        last = name
        if name == "set-cookie" then
          local cookie = parse_set_cookie(value)
          if cookie then cookies[#cookies + 1] = cookie end
        end
      else
        last = nil
        if name and rest == "" and not crlf[k] then
          k = k + 1
          if k > n then return nil, "Header field named nil didn't end with CRLF" end
        end
      end
    end
    k = k + 1
  end
  return true
end

-- The body limit and whether going past it is allowed, from the options and script args.
local function body_limits(options)
  local limit = tonumber(options and options.max_body_size)
                or tonumber(script_arg("http.max-body-size")) or DEFAULT_MAX_BODY
  if limit < 0 then limit = nil end
  local truncated_ok
  if options and options.truncated_ok ~= nil then
    truncated_ok = options.truncated_ok and true or false
  else
    truncated_ok = truthy_arg(script_arg("http.truncated-ok"))
  end
  return limit, truncated_ok
end

-- Body until the connection ends (EOF or timeout both end it); never fails.
local function read_to_end(reader, limit)
  local want = limit and (limit + 1) or huge
  local data, _, partial = reader:bytes(want)
  data = data or partial or ""
  if limit and #data > limit then return sub(data, 1, limit), true end
  return data, false
end

local function read_chunked(reader, limit)
  local pieces, total = {}, 0
  local function so_far() return concat(pieces) end
  while true do
    local line, err = reader:line(HEADER_LIMIT)
    if not line then
      return nil, "Chunk size not received; " .. tostring(err), so_far()
    end
    line = match(line, "^[ \t]*(.*)$")
    local hex = match(line, "^(%x+)")
    if not hex then
      return nil, format("Chunked encoding didn't find hex; got %q.", line), so_far()
    end
    local digits = match(hex, "^0*(%x*)$")
    local size
    if #digits > 12 then size = huge else size = tonumber(hex, 16) end
    if size == 0 then
      local tail = reader:line(HEADER_LIMIT)
      if tail and not match(tail, "^\r?\n$") then
        return nil, format("Didn't find CRLF after chunk-data; got %q.", tail), so_far()
      end
      return so_far(), false
    end
    local want = size
    local cut = false
    if limit and total + size > limit then
      want, cut = limit - total, true
    end
    local data, rerr, partial = reader:bytes(want)
    if not data then
      pieces[#pieces + 1] = partial
      return nil, "Incomplete chunk; " .. tostring(rerr), so_far()
    end
    pieces[#pieces + 1] = data
    total = total + #data
    if cut then return so_far(), true end
    local after = reader:line(HEADER_LIMIT)
    if after and not match(after, "^\r?\n$") then
      return nil, format("Didn't find CRLF after chunk-data; got %q.", after), so_far()
    end
  end
end

-- Decompress a gzip body; the text (at most limit + 1 bytes) or nil when it is corrupt.
local function gunzip(data, limit)
  if not have_zlib or type(zlib) ~= "table" or type(zlib.inflate) ~= "function" then
    return nil, "unsupported"
  end
  local ok, result = pcall(function()
    local stream = zlib.inflate(data, 16)
    local pieces, total = {}, 0
    while true do
      local piece = stream:read(8192)
      if not piece or piece == "" then break end
      pieces[#pieces + 1] = piece
      total = total + #piece
      if limit and total > limit then break end
    end
    pcall(stream.close, stream)
    return concat(pieces)
  end)
  if not ok then return nil, "corrupt" end
  return result
end

-- Remove the content codings (gzip and identity; the rest stay). Returns true, or false and
-- the error.
local function decode_body(response, limit, truncated_ok)
  local codings = response.header["content-encoding"]
  if not codings then return true end
  local decoded, undecoded = {}, {}
  response.decoded, response.undecoded = decoded, undecoded
  local body = response.rawbody
  local stuck = false
  for coding in gmatch(codings, "%w+") do
    local name = lower(coding)
    if stuck then
      undecoded[#undecoded + 1] = coding
    elseif name == "identity" then
      decoded[#decoded + 1] = coding
    elseif name == "gzip" and have_zlib then
      local text, why = gunzip(body, limit)
      if not text then
        if why == "unsupported" then
          stuck = true
          undecoded[#undecoded + 1] = coding
        else
          undecoded[#undecoded + 1] = coding
          response.body = body
          return false, "Corrupted Content-Encoding: " .. coding
        end
      else
        if limit and #text > limit then
          text = sub(text, 1, limit)
          if not truncated_ok then
            response.body = text
            response.truncated = true
            return false, "Decoded response body too large"
          end
          response.truncated = true
        end
        body = text
        decoded[#decoded + 1] = coding
      end
    else
      stuck = true
      undecoded[#undecoded + 1] = coding
    end
  end
  response.body = body
  if #undecoded == 0 then
    response.header["content-encoding"] = nil
    if response.header["content-length"] then
      response.header["content-length"] = tostring(#body)
    end
  else
    response.header["content-encoding"] = concat(undecoded, ", ")
  end
  return true
end

-- Read one response from ``reader``. Returns the response, or nil, the error and the part
-- parsed so far.
local function read_response(reader, method, options)
  local response = {header = {}, rawheader = {}, cookies = {}, rawbody = "", body = ""}
  local limit, truncated_ok = body_limits(options)
  local start = reader.used
  local status
  -- The status line (interim 1xx responses and their headers are skipped, leaving nothing
  -- of themselves in the response).
  while true do
    response = {header = {}, rawheader = {}, cookies = {}, rawbody = "", body = ""}
    local line, err = reader:line(HEADER_LIMIT)
    if not line then
      if err == "too long" then err = "Received header too large" end
      return nil, err, response
    end
    response["status-line"] = line
    local version, code = match(line, "^HTTP/(%d+%.%d+) +(%d+)[ \r\n]")
    if not version then
      return nil, format("Error parsing status-line %q.", line), response
    end
    response.version, status = version, tonumber(code)
    response.status = status
    local raw, crlf = {}, {}
    while true do
      local hline, herr = reader:line(HEADER_LIMIT)
      if not hline or reader.used - start > HEADER_LIMIT then
        if herr == "too long" or hline then herr = "Received header too large" end
        return nil, herr, response
      end
      if match(hline, "^\r?\n$") then break end
      raw[#raw + 1] = match(hline, "^(.-)\r?\n$")
      crlf[#raw] = sub(hline, -2) == "\r\n"
    end
    if status < 100 or status >= 200 then
      local count = #raw
      raw[count + 1] = ""
      response.rawheader = raw
      local ok, err = parse_headers({unpack(raw, 1, count)}, crlf, response)
      if not ok then return nil, err, response end
      break
    end
    if reader.used - start > HEADER_LIMIT then
      return nil, "Received header too large", response
    end
  end

  -- The body.
  local header = response.header
  local body, truncated
  if method == "HEAD" or status == 204 or status == 304 then
    body, truncated = "", false
  elseif header["transfer-encoding"] == "identity" then
    -- Exactly "identity" (any other value, "Identity" too, means chunked): the body runs to
    -- the end of the connection, whatever Content-Length says, as in Nmap.
    body, truncated = read_to_end(reader, limit)
  elseif header["transfer-encoding"] then
    local err, partial
    body, err, partial = read_chunked(reader, limit)
    if not body then
      response.rawbody, response.body = partial, partial
      return nil, err, response
    end
    truncated = err
  elseif header["content-length"] then
    local length = tonumber(trim(header["content-length"]))
    if not length or length ~= length then
      response.rawbody, response.body = nil, nil
      return nil, format("Content-Length %q is non-numeric", header["content-length"]),
             response
    end
    length = floor(length)
    if length < 0 then
      -- A negative length is never reached: read to the end, which is then an error (and
      -- the part kept is what sub(data, 1, length) leaves, as in Nmap).
      local data, err, partial = reader:bytes(limit and (limit + 1) or huge)
      data = data or partial or ""
      if limit and #data > limit then
        data = sub(data, 1, limit)
        response.rawbody, response.body, response.truncated = data, data, true
        return nil, "Received response body too large", response
      end
      data = sub(data, 1, length)
      response.rawbody, response.body = data, data
      return nil, err, response
    end
    local want = length
    if limit and length > limit then want = limit end
    local data, err, partial = reader:bytes(want)
    if not data then
      response.rawbody, response.body = partial, partial
      return nil, err, response
    end
    body, truncated = data, want < length
    if truncated and truncated_ok and reader.drain and length - want <= DRAIN_LIMIT then
      -- Keep a persistent connection in step: read the rest of the body and drop it.
      reader:bytes(length - want)
    end
  else
    body, truncated = read_to_end(reader, limit)
  end
  response.rawbody, response.body = body, body
  if truncated then
    response.truncated = true
    if not truncated_ok then
      return nil, "Received response body too large", response
    end
  end
  local ok, err = decode_body(response, limit, truncated_ok)
  if not ok then return nil, err, response end
  return response
end

-- ---------------------------------------------------------------------------------------------
-- One request on its own connection.

local function request(host, port, data, options)
  options = options or {}
  local method = match(data, "^(%S+)") or "GET"
  local sock, first, proto = open(host, port, data, options)
  if not sock then return error_response(first) end
  local reader = new_reader(sock, first)
  local response, err, partial = read_response(reader, upper(method), options)
  close(sock)
  if not response then
    return error_response(ERROR_PREFIX .. tostring(err), partial)
  end
  response.ssl = (proto == "ssl") and not options.scheme
  return response
end

-- ---------------------------------------------------------------------------------------------
-- Authentication headers.

local TOKEN = "[%w!#%$%%&'%*%+%-%.%^_`|~]+"

--- Parse a <code>WWW-Authenticate</code> header value into its challenges.
-- @param s The header value.
-- @return An array of challenges, each <code>{scheme=, params={name=value}}</code> (a scheme
--         directly followed by a comma has no <code>params</code>), or nil when the value does
--         not parse.
-- @usage http.parse_www_authenticate('Basic realm="x"')[1].params.realm --> "x"
function parse_www_authenticate(s)
  s = tostring(s or "")
  local challenges = {}
  local pos = 1
  local function skip_space() pos = match(s, "^[ \t]*()", pos) end
  -- One name=value parameter at pos; returns name, value and the position after, or nil.
  local function parameter(at)
    local name, after = match(s, "^(" .. TOKEN .. ")[ \t]*=[ \t]*()", at)
    if not name then return nil end
    if sub(s, after, after) == '"' then
      local value, i = {}, after + 1
      while i <= #s do
        local c = sub(s, i, i)
        if c == "\\" and i < #s then
          value[#value + 1] = sub(s, i + 1, i + 1)
          i = i + 2
        elseif c == '"' then
          return name, concat(value), i + 1
        else
          value[#value + 1] = c
          i = i + 1
        end
      end
      return nil
    end
    local value, next_pos = match(s, "^(" .. TOKEN .. ")()", after)
    if not value then return nil end
    return name, value, next_pos
  end
  skip_space()
  while pos <= #s do
    local scheme, after = match(s, "^(" .. TOKEN .. ")()", pos)
    if not scheme then return nil end
    pos = after
    local challenge = {scheme = scheme}
    skip_space()
    if sub(s, pos, pos) == "," then
      pos = pos + 1
      skip_space()
      if pos > #s then return nil end
    else
      challenge.params = {}
      while true do
        skip_space()
        local name, value, next_pos = parameter(pos)
        if not name then break end
        challenge.params[name] = value
        pos = next_pos
        skip_space()
        if sub(s, pos, pos) == "," then
          pos = pos + 1
          skip_space()
          if pos > #s then return nil end
        else
          break
        end
      end
    end
    challenges[#challenges + 1] = challenge
    skip_space()
  end
  return challenges
end

local function hex_md5(s)
  return (gsub(openssl.md5(s), ".", function(c) return format("%02x", byte(c)) end))
end

local function random_hex(n)
  local bytes
  local ok, result = pcall(nmap.get_random_bytes, n)
  if ok and type(result) == "string" and #result == n then
    bytes = result
  else
    local t = {}
    for i = 1, n do t[i] = char(random(0, 255)) end
    bytes = concat(t)
  end
  return (gsub(bytes, ".", function(c) return format("%02x", byte(c)) end))
end

-- The Authorization value answering a digest challenge.
local function digest_authorization(params, username, password, method, path)
  local realm, nonce = params.realm or "", params.nonce or ""
  local algorithm = params.algorithm
  local cnonce = random_hex(8)
  local nc = "00000001"
  local ha1 = hex_md5(username .. ":" .. realm .. ":" .. password)
  if algorithm and lower(algorithm) == "md5-sess" then
    ha1 = hex_md5(ha1 .. ":" .. nonce .. ":" .. cnonce)
  end
  local ha2 = hex_md5(method .. ":" .. path)
  local answer
  if params.qop then
    answer = hex_md5(ha1 .. ":" .. nonce .. ":" .. nc .. ":" .. cnonce .. ":auth:" .. ha2)
  else
    answer = hex_md5(ha1 .. ":" .. nonce .. ":" .. ha2)
  end
  local parts = {
    format('username="%s"', username), format('realm="%s"', realm),
    format('nonce="%s"', nonce), format('uri="%s"', path),
  }
  if algorithm then parts[#parts + 1] = "algorithm=" .. algorithm end
  parts[#parts + 1] = format('response="%s"', answer)
  parts[#parts + 1] = "qop=auth"
  parts[#parts + 1] = "nc=" .. nc
  parts[#parts + 1] = format('cnonce="%s"', cnonce)
  return "Digest " .. concat(parts, ", ")
end

-- ---------------------------------------------------------------------------------------------
-- The cache (shared by every script of the scan: one entry per host name, port and path).

local cache = {}          -- key -> {method=, response=, size=}
local cache_order = {}    -- keys, oldest first
local cache_total = 0

local function cache_key(host, port, path)
  return tostring(hostname(host)) .. ":" .. tostring(port_number(port)) .. ":" .. tostring(path)
end

local function cache_limit()
  return tonumber(script_arg("http.max-cache-size")) or DEFAULT_CACHE_SIZE
end

local function cache_drop(key)
  local entry = cache[key]
  if not entry then return end
  cache[key] = nil
  cache_total = cache_total - entry.size
  for i, k in ipairs(cache_order) do
    if k == key then remove(cache_order, i) break end
  end
end

local function cache_store(key, method, response, without_body)
  local stored = deep_copy(response)
  if without_body then
    stored.body, stored.rawbody = "", ""
  end
  local size = #(stored.body or "") + #(stored.rawbody or "")
  cache_drop(key)
  local limit = cache_limit()
  if size > limit then return end
  while cache_total + size > limit and cache_order[1] do
    cache_drop(cache_order[1])
  end
  cache[key] = {method = method, response = stored, size = size}
  cache_order[#cache_order + 1] = key
  cache_total = cache_total + size
end

-- ---------------------------------------------------------------------------------------------
-- Requests.

local function check_path(path, fname)
  if type(path) ~= "string" and type(path) ~= "number" then
    error(format("bad argument #3 to '%s' (string expected, got %s)", fname, type(path)), 3)
  end
  return tostring(path)
end

--- Send a request with any method and return the response.
--
-- With <code>options.auth.digest</code> the request is sent once without credentials to get
-- the server's digest challenge, then again answering it. Redirects are not followed and the
-- cache is not used.
-- @param host The host table or name.
-- @param port The port table or number.
-- @param method The method, sent as it is ("GET", "OPTIONS", ...).
-- @param path The path (with any query string).
-- @param options The options table (see the module description), or nil.
-- @return The response table.
function generic_request(host, port, method, path, options)
  path = check_path(path, "generic_request")
  options = options or {}
  method = tostring(method)
  if type(options.auth) == "table" and options.auth.digest then
    local first = request(host, port, build_request(host, port, method, path, options), options)
    local value = first.header and first.header["www-authenticate"]
    local params
    if value then
      for _, challenge in ipairs(M.parse_www_authenticate(value) or {}) do
        if lower(challenge.scheme) == "digest" and challenge.params then
          params = challenge.params
          break
        end
      end
    end
    if not params or not have_openssl then
      return {["status-line"] = DIGEST_ERROR, header = {}, rawheader = {}}
    end
    local authorization = digest_authorization(params, tostring(options.auth.username or ""),
                                               tostring(options.auth.password or ""), method,
                                               path)
    return request(host, port, build_request(host, port, method, path, options, nil,
                                             authorization), options)
  end
  return request(host, port, build_request(host, port, method, path, options), options)
end

-- A GET or HEAD through the cache.
local function cached_request(host, port, method, path, options)
  local key = cache_key(host, port, path)
  if not options.bypass_cache then
    local entry = cache[key]
    if entry and entry.method == method then return deep_copy(entry.response) end
  end
  local response = M.generic_request(host, port, method, path, options)
  if not options.no_cache and response.status then
    cache_store(key, method, response, options.no_cache_body)
  end
  return response
end

-- The next request of a redirect: the parsed URL's host, port and path.
local function redirect_target(host, port, u)
  local next_host
  local name = hostname(host)
  if type(host) == "table" and type(name) == "string" and lower(u.host) == lower(name) then
    next_host = shallow_copy(host)
    next_host.targetname = u.host
  else
    next_host = u.host
  end
  local next_port = port
  if u.port ~= port_number(port) then next_port = u.port end
  local path = u.path or ""
  if u.query and not find(path, "?", 1, true) then path = path .. "?" .. u.query end
  return next_host, next_port, path
end

local function fetch(host, port, method, path, options)
  options = options or {}
  local allowed
  if options.redirect_ok ~= false then
    if type(options.redirect_ok) == "function" then
      allowed = options.redirect_ok(host, port)
    else
      allowed = M.redirect_ok(host, port, MAX_REDIRECTS)
    end
  end
  local response = cached_request(host, port, method, path, options)
  local u = M.parse_redirect(host, port, path, response)
  if not u then return response end
  local locations = {}
  local current_host, current_port, current_path = host, port, path
  local hops = 0
  while u do
    locations[#locations + 1] = response.header.location
    if type(allowed) ~= "function" or not allowed(u) then break end
    hops = hops + 1
    if hops > 100 then break end  -- a redirect_ok that always says yes
    current_host, current_port, current_path = redirect_target(current_host, current_port, u)
    local hop_options = options
    if u.scheme == "http" or u.scheme == "https" then
      hop_options = shallow_copy(options)
      hop_options.scheme = u.scheme
    end
    response = cached_request(current_host, current_port, method, current_path, hop_options)
    u = M.parse_redirect(current_host, current_port, current_path, response)
  end
  response.location = locations
  return response
end

--- Fetch a page with GET, following redirects, through the cache.
-- @param host The host table or name.
-- @param port The port table or number.
-- @param path The path (with any query string).
-- @param options The options table (see the module description), or nil.
-- @return The response table.
-- @usage local response = http.get(host, port, "/index.html")
function get(host, port, path, options)
  path = check_path(path, "get")
  return fetch(host, port, "GET", path, options)
end

--- Fetch a page's header with HEAD, following redirects, through the cache.
-- @param host The host table or name.
-- @param port The port table or number.
-- @param path The path.
-- @param options The options table, or nil.
-- @return The response table (its body is empty).
function head(host, port, path, options)
  path = check_path(path, "head")
  return fetch(host, port, "HEAD", path, options)
end

--- Send a POST request (no redirects, no cache).
-- @param host The host table or name.
-- @param port The port table or number.
-- @param path The path.
-- @param options The options table, or nil.
-- @param ignored Unused (kept for old callers).
-- @param postdata The body: a string, or a table sent form-encoded.
-- @return The response table.
function post(host, port, path, options, ignored, postdata)
  path = check_path(path, "post")
  options = shallow_copy(options)
  if postdata ~= nil then options.content = postdata end
  return M.generic_request(host, port, "POST", path, options)
end

--- Send a PUT request (no redirects, no cache).
-- @param host The host table or name.
-- @param port The port table or number.
-- @param path The path.
-- @param options The options table, or nil.
-- @param putdata The body: a string, or a table sent form-encoded.
-- @return The response table; without <code>putdata</code> an error response.
function put(host, port, path, options, putdata)
  path = check_path(path, "put")
  if putdata == nil then
    return {["status-line"] = "No file to PUT.", header = {}, rawheader = {}}
  end
  options = shallow_copy(options)
  options.content = putdata
  return M.generic_request(host, port, "PUT", path, options)
end

--- Fetch a URL with GET (its scheme picks plain HTTP or HTTPS).
-- @param u The URL string.
-- @param options The options table, or nil.
-- @return The response table.
-- @usage local response = http.get_url("http://example.com/robots.txt")
function get_url(u, options)
  local parsed = url.parse(u)
  if not parsed.host then error("http.get_url: the URL has no host: " .. tostring(u), 2) end
  local port = parsed.port or url.get_default_port(parsed.scheme) or 80
  local path = parsed.path or ""
  if parsed.query then path = path .. "?" .. parsed.query end
  options = shallow_copy(options)
  if options.scheme == nil and (parsed.scheme == "http" or parsed.scheme == "https") then
    options.scheme = parsed.scheme
  end
  return M.get(parsed.host, port, path, options)
end

-- ---------------------------------------------------------------------------------------------
-- Redirects.

--- The default redirect rule: follow at most <code>counter</code> redirects, and only to the
-- same host name (compared without case) and the same port number (a URL with neither port
-- nor scheme counts as the same port), with a path and without user information.
-- @param host The host table or name of the first request.
-- @param port The port table or number of the first request.
-- @param counter How many redirects to allow (default 5).
-- @return A function taking a parsed URL and answering whether to follow it.
function redirect_ok(host, port, counter)
  counter = tonumber(counter) or MAX_REDIRECTS
  local name = hostname(host)
  local number = port_number(port)
  return function(u)
    if counter <= 0 then return false end
    counter = counter - 1
    if type(u) ~= "table" or type(u.host) ~= "string" or type(name) ~= "string" then
      return false
    end
    if u.userinfo ~= nil or u.path == nil then return false end
    if lower(u.host) ~= lower(name) then return false end
    if u.port ~= nil then
      if u.port ~= number then return false end
    elseif u.scheme ~= nil then
      return false
    end
    return true
  end
end

--- Where a redirect response points, as a parsed URL with the host and port filled in.
-- A relative location is resolved against <code>path</code>; a missing port is 80 for http,
-- 443 for https, else the port of the request.
-- @param host The host table or name of the request.
-- @param port The port table or number of the request.
-- @param path The path of the request.
-- @param response The response table.
-- @return The parsed URL (see <code>url.parse</code>), or nil when the response is not a
--         redirect (300, 301, 302, 303 or 307 with a <code>Location</code>).
function parse_redirect(host, port, path, response)
  if type(response) ~= "table" or not REDIRECT_STATUS[response.status]
     or type(response.header) ~= "table" or type(response.header.location) ~= "string" then
    return nil
  end
  local location = response.header.location
  local ok, u = pcall(url.parse, location)
  if not ok or type(u) ~= "table" then return nil end
  local relative = not u.host
  if not u.host then u.host = hostname(host) end
  if not u.port then
    if u.scheme == "https" then
      u.port = 443
    elseif u.scheme == "http" then
      u.port = 80
    else
      u.port = port_number(port)
    end
  end
  local upath = u.path or ""
  if relative or sub(upath, 1, 1) ~= "/" then
    local reference = upath .. (u.query and ("?" .. u.query) or "")
    local resolved_ok, resolved = pcall(url.absolute, tostring(path or "/"), reference)
    if resolved_ok and type(resolved) == "string" then u.path = resolved end
  end
  return u
end

-- ---------------------------------------------------------------------------------------------
-- Pipelining.

--- Add a request to a set to be sent by <code>pipeline_go</code>.
-- @param path The path.
-- @param options The options table, or nil.
-- @param all_requests The set so far, or nil for a new one.
-- @param method The method (default "GET").
-- @return The set.
-- @usage local all = http.pipeline_add("/a")
-- all = http.pipeline_add("/b", nil, all, "HEAD")
-- local responses = http.pipeline_go(host, port, all)
function pipeline_add(path, options, all_requests, method)
  all_requests = all_requests or {}
  all_requests[#all_requests + 1] = {method = method or "GET", path = path,
                                     options = options or {}}
  return all_requests
end

-- Keep-Alive: max=N, or nil.
local function keep_alive_max(response)
  local value = response.header["keep-alive"]
  return value and tonumber(match(value, "[Mm][Aa][Xx]%s*=%s*(%d+)"))
end

local function closes(response)
  local value = response.header["connection"]
  if value and find(lower(value), "close", 1, true) then return true end
  if response.version == "1.0" and not (value and find(lower(value), "keep%-alive")) then
    return true
  end
  return false
end

--- Send a set of requests over as few connections as the server allows (keep-alive and
-- pipelining), and return their responses in order.
-- @param host The host table or name.
-- @param port The port table or number.
-- @param all_requests The set built by <code>pipeline_add</code>.
-- @return An array of the responses received, in order (empty for an empty set or when the
--         server answered nothing usable), or nil when no connection could be made.
function pipeline_go(host, port, all_requests)
  if type(all_requests) ~= "table" or #all_requests == 0 then
    debug(1, "Warning: empty set of requests passed to http.pipeline_go()")
    return {}
  end
  local total = #all_requests
  debug(1, "HTTP pipeline: Total number of requests: %d", total)
  local forced = tonumber(script_arg("http.pipeline"))
  local burst = tonumber(script_arg("http.max-pipeline")) or forced or DEFAULT_PIPELINE
  if burst < 1 then burst = 1 end
  local per_connection = forced or burst
  local responses = {}
  local failed = false
  local function text(i, last)
    local r = all_requests[i]
    return build_request(host, port, r.method, r.path, r.options,
                         last and "close" or "keep-alive")
  end
  local i = 1
  local connected = false
  while i <= total and not failed do
    local options = all_requests[i].options or {}
    local limit = per_connection
    -- The very first request asks for keep-alive (even when it is the only one, as Nmap
    -- does); a later connection's first request asks for close when it is the last one or
    -- the server closes after each answer.
    local sock, first = open(host, port, text(i, connected and (limit <= 1 or i == total)),
                             options)
    connected = connected or sock ~= nil
    if not sock then break end
    local reader = new_reader(sock, first)
    reader.drain = true
    local got = 0
    local response = read_response(reader, upper(all_requests[i].method or "GET"), options)
    if response then
      responses[i] = response
      got = 1
      i = i + 1
      if closes(response) then
        limit = 1
      elseif not forced then
        local allowed = keep_alive_max(response)
        if allowed then limit = min(limit, allowed + 1) end
      end
      -- The rest of this connection's share, sent together, then read back one by one.
      local last = min(total, i + limit - 2)
      if last >= i then
        local batch = {}
        for j = i, last do batch[#batch + 1] = text(j, j == last) end
        local sent = pcall(sock.send, sock, concat(batch))
        if sent then
          for j = i, last do
            local r = read_response(reader, upper(all_requests[j].method or "GET"),
                                    all_requests[j].options)
            if not r then break end
            responses[j] = r
            got = got + 1
            i = i + 1
            if closes(r) then break end
          end
        end
      end
    end
    close(sock)
    if got == 0 then
      failed = true  -- a connection that answered nothing usable ends the set
    elseif got < per_connection and not forced and i <= total then
      per_connection = max(1, got)
    end
  end
  debug(1, "HTTP pipeline: Number of received responses: %d", i - 1)
  if not connected then return nil end
  local result = {}
  for j = 1, i - 1 do result[j] = responses[j] end
  return result
end

--- Deprecated: use <code>pipeline_add</code>.
function pGet(host, port, path, options, ignored, all_requests)
  debug(1, "WARNING: pGet() is deprecated. Use pipeline_add() instead.")
  return M.pipeline_add(path, options, all_requests, "GET")
end

--- Deprecated: use <code>pipeline_add</code>.
function pHead(host, port, path, options, ignored, all_requests)
  debug(1, "WARNING: pHead() is deprecated. Use pipeline_add instead.")
  return M.pipeline_add(path, options, all_requests, "HEAD")
end

--- Deprecated: use <code>pipeline_add</code>.
function addPipeline(host, port, path, options, ignored, all_requests, method)
  debug(1, "WARNING: addPipeline() is deprecated! Use pipeline_add instead.")
  return M.pipeline_add(path, options, all_requests, method)
end

--- Deprecated: use <code>pipeline_go</code>.
function pipeline(host, port, all_requests)
  debug(1, "WARNING: pipeline() is deprecated. Use pipeline_go() instead.")
  return M.pipeline_go(host, port, all_requests)
end

-- ---------------------------------------------------------------------------------------------
-- Response helpers.

--- The status of a response as text: the status line after the version, without line
-- endings, or the status code, or <code>"&lt;unknown status&gt;"</code>.
-- @param data A response table.
-- @return The text (and, from a status line, the count of line endings removed).
function get_status_string(data)
  if type(data) ~= "table" then return "<unknown status>" end
  local line = data["status-line"]
  if line == nil then
    if data.status ~= nil then return data.status end
    return "<unknown status>"
  end
  line = tostring(line)
  local rest = match(line, "^[^ ]* (.*)$")
  if not rest then return line end
  return gsub(rest, "\r?\n", "")
end

--- Search the header lines and then the body of a response for a Lua pattern.
-- @param response A response table.
-- @param pattern The pattern.
-- @param case_sensitive If not true, the text and the pattern are both lower-cased first.
-- @return true and an array of the captures (the whole match when there are none), or false.
-- @usage local found, matches = http.response_contains(response, "version ([%d.]+)")
function response_contains(response, pattern, case_sensitive)
  if not case_sensitive then pattern = lower(pattern) end
  local function search(text)
    if type(text) ~= "string" then return nil end
    if not case_sensitive then text = lower(text) end
    local found = {match(text, pattern)}
    if #found > 0 then return found end
  end
  for _, line in pairs(response.rawheader or {}) do
    local found = search(line)
    if found then return true, found end
  end
  local found = search(response.body)
  if found then return true, found end
  return false
end

--- A Lua pattern matching an HTML start tag (or, with <code>endtag</code>, an end tag) of
-- the given name, in any case.
-- @param tag The tag name.
-- @param endtag If true, match the end tag.
-- @return The pattern.
-- @usage local pattern = http.tag_pattern("script")
function tag_pattern(tag, endtag)
  local name = gsub(tostring(tag), "%a", function(c)
    return "[" .. lower(c) .. upper(c) .. "]"
  end)
  if endtag then return "</%s*" .. name .. "%f[%s>].->" end
  return "<%s*" .. name .. "%f[%s/>].->"
end

local MONTHS = {Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8,
                Sep = 9, Oct = 10, Nov = 11, Dec = 12}

--- Parse an HTTP date in any of the three formats of RFC 2616 (RFC 1123, RFC 850 and C's
-- asctime). Two-digit years below 70 are in the 2000s.
-- @param s The date string.
-- @return A table like <code>os.date("*t")</code> gives (year, month, day, hour, min, sec,
--         isdst=false), or nil.
-- @usage http.parse_date("Sun, 06 Nov 1994 08:49:37 GMT").year --> 1994
function parse_date(s)
  s = tostring(s)
  local day, month, year, hour, min, sec, zone =
    match(s, "^%w+, (%d+) (%w+) (%d+) (%d+):(%d+):(%d+) (%w+)$")
  if not day then
    day, month, year, hour, min, sec, zone =
      match(s, "^%w+, (%d+)%-(%w+)%-(%d+) (%d+):(%d+):(%d+) (%w+)$")
  end
  if not day then
    month, day, hour, min, sec, year = match(s, "^%w+ (%w+)  ?(%d+) (%d+):(%d+):(%d+) (%d+)")
    if month then zone = "GMT" end
  end
  if not day then
    debug(1, "http.parse_date: can't parse date %q: unknown format.", s)
    return nil
  end
  local month_number = MONTHS[month]
  if not month_number then
    debug(1, "http.parse_date: unknown month name %q.", month)
    return nil
  end
  if zone ~= "GMT" then
    debug(1, "http.parse_date: don't know time zone %q, only \"GMT\".", zone)
    return nil
  end
  year = tonumber(year)
  if year < 100 then
    year = year + 1900
    if year < 1970 then year = year + 100 end
  end
  return {year = year, month = month_number, day = tonumber(day), hour = tonumber(hour),
          min = tonumber(min), sec = tonumber(sec), isdst = false}
end

-- ---------------------------------------------------------------------------------------------
-- Forms.

local function decode_entities(s)
  s = gsub(s, "&#[xX](%x+);", function(h)
    local n = tonumber(h, 16)
    if n and n < 256 then return char(n) end
  end)
  s = gsub(s, "&#(%d+);", function(d)
    local n = tonumber(d)
    if n and n < 256 then return char(n) end
  end)
  local named = {lt = "<", gt = ">", quot = '"', apos = "'", nbsp = "\194\160"}
  s = gsub(s, "&(%a+);", function(name) return named[name] end)
  return (gsub(s, "&amp;", "&"))
end

-- The attributes of a tag's text, by lower-case name.
local function attributes(tag)
  local found = {}
  local body = match(tag, "^<%s*[%w%-]+(.*)$") or ""
  local pos = 1
  while pos <= #body do
    local name, after = match(body, "^%s+([^%s=>/]+)()", pos)
    if not name then
      pos = pos + 1
    else
      pos = after
      local value
      local equals = match(body, "^%s*=%s*()", pos)
      if equals then
        pos = equals
        local quote = sub(body, pos, pos)
        if quote == '"' or quote == "'" then
          local close_at = find(body, quote, pos + 1, true)
          if close_at then
            value = sub(body, pos + 1, close_at - 1)
            pos = close_at + 1
          else
            value = sub(body, pos + 1)
            pos = #body + 1
          end
        else
          value, pos = match(body, "^([^%s=>]*)()", pos)
        end
      end
      name = lower(name)
      if found[name] == nil then found[name] = value or "" end
    end
  end
  return found
end

--- Parse the text of a form (as <code>grab_forms</code> gives) into its action, method, id
-- and fields.
-- @param form The form's text, from <code>&lt;form</code>.
-- @return A table with <code>action</code>, <code>method</code> (lower case), <code>id</code>
--         (lower case) where present, and <code>fields</code>: an array of
--         <code>{name=, type=, value=}</code> for the named inputs, then the named textareas
--         (type "textarea").
function parse_form(form)
  form = tostring(form or "")
  local result = {fields = {}}
  local open_tag = match(form, "^%s*(<%s*[Ff][Oo][Rr][Mm][^>]*>)")
  if open_tag then
    local attrs = attributes(open_tag)
    if attrs.action then result.action = attrs.action end
    if attrs.method then result.method = lower(attrs.method) end
    if attrs.id then result.id = lower(attrs.id) end
  end
  for tag in gmatch(form, "<%s*[Ii][Nn][Pp][Uu][Tt][^>]*>") do
    local attrs = attributes(tag)
    if attrs.name then
      local field = {name = attrs.name}
      if attrs.type then field.type = lower(attrs.type) end
      if attrs.value then field.value = decode_entities(attrs.value) end
      result.fields[#result.fields + 1] = field
    end
  end
  for tag in gmatch(form, "<%s*[Tt][Ee][Xx][Tt][Aa][Rr][Ee][Aa][^>]*>") do
    local attrs = attributes(tag)
    if attrs.name then
      result.fields[#result.fields + 1] = {name = attrs.name, type = "textarea"}
    end
  end
  return result
end

--- The forms of an HTML page: the text of each, from its <code>&lt;form</code> to (not
-- including) the <code>&lt;/form&gt;</code> that closes it.
-- @param body The page.
-- @return An array of strings.
function grab_forms(body)
  local forms = {}
  if type(body) ~= "string" then return forms end
  local pos = 1
  while true do
    local start = find(body, "<[Ff][Oo][Rr][Mm]%f[%s>]", pos)
    if not start then break end
    local stop = find(body, "</[Ff][Oo][Rr][Mm]%s*>", start)
    if not stop then break end
    forms[#forms + 1] = sub(body, start, stop - 1)
    pos = stop + 1
  end
  return forms
end

-- ---------------------------------------------------------------------------------------------
-- 404 detection.

--- A fingerprint of a page that ignores what changes between two "not found" pages: times,
-- dates, paths and am/pm markers are removed, and the rest hashed with MD5.
-- @param body The page.
-- @return The fingerprint: 16 binary bytes, or the cleaned text itself when debugging is
--         on (or OpenSSL is missing); nothing for a nil body.
function clean_404(body)
  if not body then return end
  body = tostring(body)
  body = gsub(body, "%d?%d:%d%d:%d%d", "")
  body = gsub(body, "%d%d:%d%d", "")
  body = gsub(body, "AM", "")
  body = gsub(body, "am", "")
  body = gsub(body, "PM", "")
  body = gsub(body, "pm", "")
  body = gsub(body, "%d%d%d%d[%-/]%d%d[%-/]%d%d", "")
  body = gsub(body, "%d%d%d%d%d%d%d%d", "")
  body = gsub(body, "%d%d[%-/]%d%d[%-/]%d%d%d%d", "")
  body = gsub(body, "%d%d[%-/]%d%d[%-/]%d%d", "")
  body = gsub(body, "%d%d%d%d%d%d", "")
  body = gsub(body, "/[^ ]+", "")
  -- With debugging on, the cleaned text itself (readable in the logs), as Nmap does.
  if have_openssl and nmap.debugging() == 0 then return openssl.md5(body) end
  return body
end

--- Find out how the server answers requests for pages that do not exist, by asking for
-- three unlikely paths.
-- @param host The host table or name.
-- @param port The port table or number.
-- @return true, the status code of a missing page and (when that code is 200) the
--         <code>clean_404</code> fingerprint of the missing page; or false and why not.
function identify_404(host, port)
  local stamp = tostring(os_time())
  local paths = {"/nmaplowercheck" .. stamp, "/NmapUpperCheck" .. stamp,
                 "/Nmap/folder/check" .. stamp}
  local options = {redirect_ok = false}
  local first = M.get(host, port, paths[1], options)
  if not first then return false, "HTTP request failed (is the host still up?)" end
  if first.status == nil then return true end
  if first.status ~= 200 then return true, first.status end
  local second = M.get(host, port, paths[2], options)
  local third = M.get(host, port, paths[3], options)
  if second.status ~= 200 then
    return false, format("HTTP 404 status changed for second request (became %s).",
                         tostring(second.status))
  end
  if third.status ~= 200 then
    return false, format("HTTP 404 status changed for third request (became %s).",
                         tostring(third.status))
  end
  local clean = M.clean_404(first.body)
  if clean ~= M.clean_404(second.body) then
    return false, "Two known 404 pages returned valid and different pages; unable to " ..
                  "identify valid response."
  end
  if clean ~= M.clean_404(third.body) then
    return false, "Two known 404 pages returned valid and different pages; unable to " ..
                  "identify valid response (happened when checking a folder)."
  end
  return true, 200, clean
end

--- Whether a response is a real page rather than the server's "not found" answer.
-- @param data The response table.
-- @param result_404 The "not found" status from <code>identify_404</code>.
-- @param known_404 The "not found" fingerprint from <code>identify_404</code>.
-- @param page The path requested (for the debug output).
-- @param displayall If true, other error statuses (500, 403, ...) count as pages too.
-- @return true if the page seems to exist.
function page_exists(data, result_404, known_404, page, displayall)
  if type(data) ~= "table" or not data.status then
    debug(1, "HTTP: HTTP request failed (is the host still up?)")
    return false
  end
  local status = data.status
  if status == 200 then
    if result_404 == 200 then
      if M.clean_404(data.body or "") == known_404 then
        debug(2, "HTTP: Page matched the 404 response (%s)", tostring(page))
        return false
      end
      return true
    end
    return true
  end
  if status == 404 or status == result_404 then return false end
  if status == 401 then return true end
  if displayall then return true end
  debug(2, "HTTP: Page didn't match the 404 response (%s) (%s)", tostring(status),
        tostring(page))
  return false
end

--- Whether the server answers HEAD usefully: a HEAD for <code>path</code> (default "/")
-- gets 200. Never when missing pages get 200 too.
-- @param host The host table or name.
-- @param port The port table or number.
-- @param result_404 The "not found" status from <code>identify_404</code>.
-- @param path The path to try.
-- @return true and the HEAD response, or false.
function can_use_head(host, port, result_404, path)
  if result_404 == 200 then
    debug(1, "HTTP: Not using HEAD: missing pages return 200.")
    return false
  end
  local data = M.head(host, port, path or "/")
  if type(data) == "table" and data.status == 200 then return true, data end
  return false
end

-- ---------------------------------------------------------------------------------------------
-- The site map in the registry.

local function add_unique(list, value)
  for _, v in ipairs(list) do
    if v == value then return end
  end
  list[#list + 1] = value
end

local function subtable(t, key)
  local value = t[key]
  if type(value) ~= "table" then
    value = {}
    t[key] = value
  end
  return value
end

--- Record a page seen on a web server in <code>nmap.registry[host][www][port]</code>
-- (host as <code>stdnse.get_hostname</code> names it): lists of pages, files, directories,
-- CGIs and their arguments, pages by extension, status and content type, and links.
-- @param host The host table or name.
-- @param port The port table or number.
-- @param path The page's path or URL.
-- @param status Its status code, or nil.
-- @param links_to An array of the pages it links to, or nil.
-- @param linked_from An array of the pages linking to it, or nil.
-- @param contenttype Its content type, or nil.
function save_path(host, port, path, status, links_to, linked_from, contenttype)
  local ok, parsed = pcall(url.parse, tostring(path))
  if not ok or type(parsed) ~= "table" then return end
  local page = parsed.path or ""
  local full = page
  if parsed.query then full = page .. "?" .. parsed.query end

  local per_host = subtable(nmap.registry, hostname(host))
  local www = subtable(per_host, "www")
  local site = subtable(www, port_number(port) or port)

  add_unique(subtable(site, "all_pages"), page)
  add_unique(subtable(site, "all_pages_full_query"), full)
  if status then add_unique(subtable(subtable(site, "status_codes"), status), page) end
  if contenttype then add_unique(subtable(subtable(site, "content-type"), contenttype), full) end
  if parsed.is_folder then
    add_unique(subtable(site, "directories"), page)
  else
    add_unique(subtable(site, "files"), page)
    if parsed.extension then
      add_unique(subtable(subtable(site, "extensions"), parsed.extension), page)
    end
  end
  if parsed.query then
    add_unique(subtable(site, "cgi"), page)
    add_unique(subtable(site, "cgi_full_query"), full)
    local args_ok, args = pcall(url.parse_query, parsed.query)
    if args_ok then insert(subtable(subtable(site, "cgi_args"), page), args) end
    add_unique(subtable(subtable(site, "cgi_querystring"), page), parsed.query)
  end
  if type(links_to) == "table" then
    local links = subtable(subtable(site, "links_to"), full)
    for _, link in ipairs(links_to) do add_unique(links, link) end
  end
  if type(linked_from) == "table" then
    for _, from in ipairs(linked_from) do
      add_unique(subtable(subtable(site, "links_to"), from), full)
    end
  end
end

return _ENV
