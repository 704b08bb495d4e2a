-- NSE socket objects (nse-spec §6; the seed's "Network I/O API"), the Lua half.
--
-- How this works: a socket object is an empty table whose state (the Python handle and the
-- owning coroutine) lives in STATE; api/sockets.py does the I/O. Errors are raised at the
-- line of the method's caller, as Nmap's are ("file:line: socket must be connected"; none
-- through pcall), and argument errors are worded here, where the method's name is visible,
-- as luaL_argerror words them ("bad argument #2 to 'connect' (...)", "calling 'x' on bad
-- self (...)", '?' through pcall). The methods are Lua functions, so a script's
-- `return s:m(...)` is a tail call that erases its own frame: such errors carry no position
-- and name the method by its own name.
-- receive_buf searches its buffer here: the delimiter function runs in Lua, behind a C call
-- (string.gsub) so that a yield inside it fails as it does in Nmap.
local K, api = ...
local settle = K.settle

local co_running, error, format, getinfo, gsub, find, sub, mtype, pack, rawget, select,
      setmetatable, tonumber, tostring, type, unpack, getmetatable_raw =
      coroutine.running, error, string.format, debug.getinfo, string.gsub, string.find,
      string.sub, math.type, table.pack, rawget, select, setmetatable, tonumber, tostring,
      type, table.unpack, debug.getmetatable

local STATE = setmetatable({}, {__mode = "k"})  -- socket -> {handle, owner}
local CERT = setmetatable({}, {__mode = "k"})   -- certificate -> {fields, der}

-- -------------------------------------------------------------------------------------------
-- luaL_argerror and friends, as seen from the API function ``level`` frames above the caller.

local function typename(v)
  local mt = getmetatable_raw(v)
  local name = mt and rawget(mt, "__name")
  if type(name) == "string" then return name end
  return type(v)
end

local NAMES = {}  -- API method function -> its name (for tail-called methods)

--- Raise ``message`` at the line that called the API function ``level`` frames up.
local function fail(level, message)
  local ar = getinfo(level + 1, "t")
  error(message, (ar and ar.istailcall) and 0 or level + 2)
end

local function argerror(level, narg, extramsg, fallback)
  local ar = getinfo(level + 1, "ntf")
  local name, method, at = ar.name, ar.namewhat == "method", level + 2
  if ar.istailcall then
    name, method, at = NAMES[ar.func] or fallback, NAMES[ar.func] ~= nil, 0
  end
  if method then
    narg = narg - 1
    if narg == 0 then
      error(format("calling '%s' on bad self (%s)", name, extramsg), at)
    end
  end
  error(format("bad argument #%d to '%s' (%s)", narg, name or fallback or "?", extramsg), at)
end

local function typeerror(level, narg, expected, v, present, fallback)
  argerror(level + 1, narg, expected .. " expected, got " .. (present and typename(v)
           or "no value"), fallback)
end

local function checkstring(level, narg, v, present, fallback)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return tostring(v) end
  typeerror(level + 1, narg, "string", v, present, fallback)
end

local function checknumber(level, narg, v, present)
  local t = type(v)
  if t == "number" then return v end
  if t == "string" then
    local n = tonumber(v)
    if n then return n end
  end
  typeerror(level + 1, narg, "number", v, present)
end

local function checkinteger(level, narg, v, present)
  local t = type(v)
  local n = t == "number" and v or (t == "string" and tonumber(v)) or nil
  if n then
    local i = math.tointeger(n)
    if i then return i end
    argerror(level + 1, narg, "number has no integer representation")
  end
  typeerror(level + 1, narg, "number", v, present)
end

local function checkboolean(level, narg, v, present)
  if type(v) ~= "boolean" then typeerror(level + 1, narg, "boolean", v, present) end
  return v
end

-- -------------------------------------------------------------------------------------------
-- Objects handed over to Python: certificates (their BIGNUMs come from lua/bignum.lua).

local make_bignum = K.bignum.make  -- pubkey modulus and exponent (lua/bignum.lua)

local CERT_METHODS = {}
local CERT_MT = {
  __name = "SSL_CERT",
  __index = function(c, key)
    local value = CERT[c].fields[key]
    if value == nil then return CERT_METHODS[key] end
    return value
  end,
  __newindex = function() error("attempt to index a SSL_CERT value", 2) end,
  __tostring = function(c) return format("SSL_CERT: %p", c) end,
  __metatable = "SSL_CERT",
}

local PENDING, RAISE, NOT_SSL

function CERT_METHODS.digest(c, ...)
  local algorithm = checkstring(1, 2, (...), select("#", ...) >= 1)
  return (api.ssl_cert_digest(CERT[c].der, algorithm))
end
NAMES[CERT_METHODS.digest] = "digest"

local function make_cert(fields, der)
  local c = setmetatable({}, CERT_MT)
  CERT[c] = {fields = fields, der = der}
  return c
end

PENDING, RAISE, NOT_SSL = api.socket_init(make_cert, make_bignum)

-- -------------------------------------------------------------------------------------------
-- Sockets.

-- Collected sockets: a finalizer must not call Python (it may run while the Lua state is
-- being closed), so it only notes the handle; the next new_socket or connect reports them.
local DEAD = {}

local function report_dead()
  local dead = DEAD
  DEAD = {}
  api.socket_gc(dead)
end

local Socket = {}
local SOCKET_MT = {
  __name = "nsock",
  __index = Socket,
  __newindex = function() error("attempt to index a userdata value", 2) end,
  __metatable = {},
  __gc = function(s)
    local st = STATE[s]
    if st then DEAD[#DEAD + 1] = st.handle end
  end,
}

local function state(s)  -- called directly from an API method
  local st = STATE[s]
  if not st then typeerror(2, 1, "nsock", s, true) end
  return st
end

--- The state of ``s`` for a waiting operation by the running coroutine, which becomes the
--- owner unless another coroutine is (nse-spec §6.1).
local function own(s)  -- called directly from an API method
  local st = STATE[s]
  if not st then typeerror(2, 1, "nsock", s, true) end
  local co = co_running()
  local owner = st.owner
  if owner == nil then
    st.owner = co
  elseif owner ~= co then
    fail(2, "Invalid reuse of a socket from one thread to another.")
  end
  return st
end

local function host_port(level, n, host, port, proto)
  local address, name
  if type(host) == "table" then
    address = host.ip or host.targetname
    if address == nil then
      argerror(level + 1, 2, "host table lacks 'ip' or 'targetname' fields")
    end
    address = tostring(address)
    name = host.targetname
  else
    address = checkstring(level + 1, 2, host, n >= 1)
    name = address
  end
  local number
  if type(port) == "table" then
    number = port.number
    if mtype(number) ~= "integer" then
      argerror(level + 1, 3, "port table lacks integer 'number' field")
    end
    if proto == nil and type(port.protocol) == "string" then proto = port.protocol end
  else
    number = checkinteger(level + 1, 3, port, n >= 2)
  end
  return address, name, number, proto
end

function Socket.connect(s, ...)
  local st = state(s)
  if DEAD[1] then report_dead() end
  local n = select("#", ...)
  local host, port, proto = ...
  local address, name, number
  address, name, number, proto = host_port(1, n, host, port, proto)
  if proto ~= nil then
    proto = checkstring(1, 4, proto, true)
    if proto ~= "tcp" and proto ~= "udp" and proto ~= "ssl" then
      local message = api.socket_profile().bad_protocol_error
      if message then return false, message end
      argerror(1, 4, "invalid option '" .. proto .. "'")
    end
  end
  local first, second = api.socket_connect(st.handle, address, name, number, proto)
  if first == RAISE then fail(1, second) end
  first, second = settle(first, second)
  st.owner = nil  -- whoever does I/O next owns it
  if second == nil then return first end
  return first, second
end

function Socket.send(s, ...)
  local st = own(s)
  local data = checkstring(1, 2, (...), select("#", ...) >= 1)
  local first, second = api.socket_send(st.handle, data)
  if first == RAISE then fail(1, second) end
  return settle(first, second)
end

function Socket.sendto(s, ...)
  local st = own(s)
  local n = select("#", ...)
  local host, port, data = ...
  local address, _, number = host_port(1, n, host, port)
  data = checkstring(1, 4, data, n >= 3)
  local first, second = api.socket_sendto(st.handle, address, number, data)
  if first == RAISE then fail(1, second) end
  return settle(first, second)
end

function Socket.receive(s)
  local st = own(s)
  local first, second = api.socket_receive(st.handle)
  if first == RAISE then fail(1, second) end
  return settle(first, second)
end

function Socket.receive_lines(s, ...)
  local st = own(s)
  local count = checkinteger(1, 2, (...), select("#", ...) >= 1)
  local first, second = api.socket_receive_lines(st.handle, count)
  if first == RAISE then fail(1, second) end
  return settle(first, second)
end

function Socket.receive_bytes(s, ...)
  local st = own(s)
  local count = checkinteger(1, 2, (...), select("#", ...) >= 1)
  local first, second = api.socket_receive_bytes(st.handle, count)
  if first == RAISE then fail(1, second) end
  return settle(first, second)
end

-- The seed's receive_buf messages (nse-spec §11.13: Nmap 7 raises instead).
local SEED_NOT_DELIMITER = "Expected either a function or a string!"
local SEED_FUNCTION_ERROR = "Error inside splitting-function"
local SEED_FIND_ERROR = "Error in string.find (nsockobj:receive_buf)!"
local SEED_NEGATIVE = "Delimiter has negative size!"
local INVALID_INDICES = "invalid indices for match"

--- Call the delimiter function behind a C boundary: it must not yield.
local function call_delimiter(f, buf)
  local l, r
  gsub("x", "x", function() l, r = f(buf) end)
  return l, r
end

local function pcall_delimiter(f, buf)
  local ok, l, r = pcall(call_delimiter, f, buf)
  if not ok then return false end
  return true, l, r
end

function Socket.receive_buf(s, ...)
  local st = own(s)
  local n = select("#", ...)
  local delimiter, keep = ...
  local handle = st.handle
  local status, buf = api.socket_rbuf_begin(handle)
  if status == RAISE then fail(1, buf) end
  if not status then return status, buf end
  local strict
  local dtype = type(delimiter)
  if dtype ~= "string" and dtype ~= "function" then
    if api.socket_profile().receive_buf_strict then
      argerror(1, 2, "function/string expected, got " .. (n >= 1 and typename(delimiter)
               or "no value"))
    end
    return false, SEED_NOT_DELIMITER
  end
  if type(keep) ~= "boolean" then
    if api.socket_profile().receive_buf_strict then
      checkboolean(1, 3, keep, n >= 2)
    end
    keep = keep and true or false
  end
  local start = buf
  while true do
    local l, r
    if dtype == "string" then
      if strict == nil then strict = api.socket_profile().receive_buf_strict end
      local ok
      ok, l, r = pcall(find, buf, delimiter)  -- called from C, as in Nmap: no position
      if not ok then
        if strict then error(l, 0) end
        return false, SEED_FIND_ERROR
      end
    else
      if strict == nil then strict = api.socket_profile().receive_buf_strict end
      if strict then
        l, r = call_delimiter(delimiter, buf)
      else
        local ok
        ok, l, r = pcall_delimiter(delimiter, buf)
        if not ok then return false, SEED_FUNCTION_ERROR end
      end
    end
    if l ~= nil and r ~= nil then
      if mtype(l) ~= "integer" or mtype(r) ~= "integer" or l > r or r > #buf or r < 0 then
        if not strict and mtype(l) == "integer" and mtype(r) == "integer" and l > r then
          return false, SEED_NEGATIVE
        end
        fail(1, INVALID_INDICES)
      end
      local piece = keep and sub(buf, 1, r) or sub(buf, 1, l > 0 and l - 1 or 0)
      api.socket_rbuf_set(handle, sub(buf, r + 1))
      return true, piece
    end
    local ok, data = api.socket_rbuf_read(handle)
    if ok == RAISE then fail(1, data) end
    ok, data = settle(ok, data)
    if not ok then
      if buf ~= start and api.socket_profile().receive_buf_keeps_failed_read then
        api.socket_rbuf_set(handle, buf)
      end
      return ok, data
    end
    buf = buf .. data
  end
end

function Socket.close(s)
  local st = state(s)
  st.owner = nil
  return api.socket_close(st.handle)
end

function Socket.get_info(s)
  local st = state(s)
  local first, a, b, c, d = api.socket_get_info(st.handle)
  if first == RAISE then fail(1, a) end
  if not first then return first, a end
  return first, a, b, c, d
end

function Socket.set_timeout(s, ...)
  local st = state(s)
  local timeout = checknumber(1, 2, (...), select("#", ...) >= 1)
  local first, second = api.socket_set_timeout(st.handle, timeout)
  if first == RAISE then fail(1, second) end
  return first
end

function Socket.bind(s, ...)
  local st = state(s)
  local n = select("#", ...)
  local address, port = ...
  if address ~= nil then address = checkstring(1, 2, address, true) end
  port = checkinteger(1, 3, port, n >= 2)
  return api.socket_bind(st.handle, address, port)
end

function Socket.reconnect_ssl(s)
  local st = own(s)
  local first, second = api.socket_reconnect_ssl(st.handle)
  if first == RAISE then fail(1, second) end
  first, second = settle(first, second)
  st.owner = nil
  if second == nil then return first end
  return first, second
end

function Socket.get_ssl_certificate(s)
  local st = state(s)
  local first, second = api.socket_get_ssl_certificate(st.handle)
  if first == NOT_SSL then argerror(1, 1, "not a SSL socket") end
  return first, second
end

-- Packet capture (api/rawnet.py does the work).
local function pcap_method(name, owned)
  local f = api[name]
  return function(s, ...)
    local st = owned and own(s) or state(s)
    local r = pack(f(st.handle, ...))
    if r[1] == RAISE then fail(1, r[2]) end
    return settle(unpack(r, 1, r.n))
  end
end
Socket.pcap_open = pcap_method("pcap_open")
Socket.pcap_register = pcap_method("pcap_register")
Socket.pcap_receive = pcap_method("pcap_receive", true)
Socket.pcap_close = pcap_method("pcap_close")

for name, f in pairs(Socket) do NAMES[f] = name end

local function option(narg, value, default, a, b)  -- called directly from new_socket
  if value == nil then return default end
  local t = type(value)
  if t == "number" then
    value = tostring(value)
  elseif t ~= "string" then
    argerror(2, narg, "string expected, got " .. typename(value), "nmap.new_socket")
  end
  if value ~= a and value ~= b then
    argerror(2, narg, "invalid option '" .. value .. "'", "nmap.new_socket")
  end
  return value
end

--- nmap.new_socket([proto[, af]]): proto "tcp" (default) or "udp"; af "inet" or "inet6"
--- (default: the scan's family).
local function new_socket(proto, af)
  proto = option(1, proto, "tcp", "tcp", "udp")
  af = option(2, af, nil, "inet", "inet6")
  if DEAD[1] then report_dead() end
  local s = setmetatable({}, SOCKET_MT)
  STATE[s] = {handle = api.socket_new(proto, af)}
  return s
end

return {new_socket = new_socket, make_bignum = make_bignum, make_cert = make_cert}
