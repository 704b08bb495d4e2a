-- The `nmap` module scripts see: Lua wrappers over the Python API (worker/nse/api/*).
-- Each wrapper passes the Python result through K.settle, which returns values, waits when
-- the operation must wait, or raises the script error the Python side reported.
local K, api, load_part = ...
local settle = K.settle
local co_running = coroutine.running
local error, type, setmetatable, tostring, debug, ipairs =
      error, type, setmetatable, tostring, debug, ipairs

local nmap = {}

--- A Lua function that calls Python API function ``name`` and settles its result.
local function wrap(name)
  local f = api[name]
  if f == nil then error("nse: missing API function " .. name) end
  return function(...) return settle(f(...)) end
end

-- Runtime information (api/info.py).
for _, name in ipairs({"debugging", "verbosity", "timing_level", "have_ssl", "is_privileged",
                       "address_family", "get_interface", "get_interface_info",
                       "list_interfaces", "get_interface_link", "get_ttl", "get_payload_length",
                       "get_random_bytes", "clock", "clock_ms", "fetchfile", "resolve",
                       "get_dns_servers", "log_write", "version_intensity",
                       "port_is_excluded"}) do
  nmap[name] = wrap(name)
end

-- Targets and ports (api/targets.py).
for _, name in ipairs({"get_port_state", "get_ports", "set_port_state", "set_port_version",
                       "add_targets", "new_targets_num"}) do
  nmap[name] = wrap(name)
end

-- ---------------------------------------------------------------------------------------------
-- new_try (nse-spec §7.3): pure Lua.

local function try_error(message)
  return {errtype = "nmap.new_try", message = message}
end

function nmap.new_try(handler)
  return function(status, ...)
    if status then
      if type(status) ~= "boolean" then
        api.log_stderr("finalizing a non-conforming function that did not first return a "
                       .. "boolean")
      end
      return ...
    end
    if handler then handler() end
    error(try_error((...)), 0)
  end
end

-- ---------------------------------------------------------------------------------------------
-- Mutexes and condition variables (api/sync.py holds the state; owners are coroutines).

--- The name the caller used for the function at stack ``level`` (as luaL_argerror reports
--- it), else ``fallback`` (e.g. under pcall, where there is none).
local function called_as(level, fallback)
  local info = debug.getinfo(level + 1, "n")
  return info and info.name or fallback
end

local function object_key(obj, fname)
  local t = type(obj)
  if obj == nil or t == "boolean" or t == "number" then
    error("bad argument #1 to '" .. called_as(2, fname) .. "' (object expected)", 0)
  end
  if t == "string" then return "s:" .. obj end
  return "o:" .. K.object_id(obj)
end

local MUTEXES = setmetatable({}, {__mode = "kv"})  -- obj -> mutex function while alive
local CONDVARS = setmetatable({}, {__mode = "kv"})

function nmap.mutex(obj)
  local key = object_key(obj, "nmap.mutex")
  local existing = MUTEXES[obj]
  if existing then return existing end
  local function mutex(op)
    local co = co_running()
    if op == "lock" then
      return settle(api.mutex_lock(key, K.co_id(co)))
    elseif op == "trylock" then
      return settle(api.mutex_trylock(key, K.co_id(co)))
    elseif op == "done" then
      return settle(api.mutex_done(key, K.co_id(co)))
    elseif op == "running" then
      local owner = settle(api.mutex_running(key))
      return owner and K.co_by_id(owner) or nil
    end
    error("bad argument #1 to '" .. called_as(1, "?") .. "' (invalid option '" ..
          tostring(op) .. "')", 0)
  end
  MUTEXES[obj] = mutex
  return mutex
end

function nmap.condvar(obj)
  local key = object_key(obj, "nmap.condvar")
  settle(api.condvar_register(key))  -- the calling thread's end broadcasts it
  local existing = CONDVARS[obj]
  if existing then return existing end
  local function condvar(op)
    if op == "wait" then
      return settle(api.condvar_wait(key))
    elseif op == "signal" then
      return settle(api.condvar_signal(key))
    elseif op == "broadcast" then
      return settle(api.condvar_broadcast(key))
    end
    error("bad argument #1 to '" .. called_as(1, "?") .. "' (invalid option '" ..
          tostring(op) .. "')", 0)
  end
  CONDVARS[obj] = condvar
  return condvar
end

-- ---------------------------------------------------------------------------------------------
-- The registry (api/registry.py: a plain table here; a Redis-backed one in a cluster).

nmap.registry = api.registry()

-- ---------------------------------------------------------------------------------------------
-- Sockets and raw packets.

local socket_module = load_part("socket.lua", K, api)
nmap.new_socket = socket_module.new_socket
nmap.newsocket = socket_module.new_socket  -- the seed's spelling in its pcap section
nmap.socket = {
  new = socket_module.new_socket,
  sleep = wrap("sleep"),
  loop = wrap("loop"),
  parse_ssl_certificate = wrap("parse_ssl_certificate"),
  get_stats = wrap("socket_stats"),
}

local dnet_module = load_part("dnet.lua", K, api)
nmap.new_dnet = dnet_module.new_dnet
nmap.dnet = {new = dnet_module.new_dnet, get_interface_info = nmap.get_interface_info}

-- Scripts from an Nmap data directory see Nmap 7.93's module: the seed's spellings that 7.x
-- removed (nse-spec §11.6) are not there.
local REMOVED_IN_7 = {get_interface_link = true, newsocket = true}
local nmap7 = setmetatable({}, {__index = function(_, key)
  if not REMOVED_IN_7[key] then return nmap[key] end
end, __newindex = nmap, __pairs = function()
  return function(_, key)
    local value
    repeat key, value = next(nmap, key) until key == nil or not REMOVED_IN_7[key]
    return key, value
  end, nil, nil
end})

return nmap, nmap7
