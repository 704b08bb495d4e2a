---
-- Standard functions for NSE scripts: threads, sleeping, logging, script arguments and
-- ordered output tables.
--
-- Written for nsecluster from the NSE specification; the names, arguments and return values
-- are those scripts written for Nmap expect.
--
-- @class module
-- @name stdnse

local nmap = require "nmap"
local engine = require "nsecluster.engine"

local error, ipairs, next, pairs, pcall, rawget, rawset, require, select, setmetatable,
      tostring, type = error, ipairs, next, pairs, pcall, rawget, rawset, require, select,
      setmetatable, tostring, type
local format, table = string.format, table

local _ENV = {}

--- Sleep for a given time, letting other threads run.
-- @param t Time to sleep, in seconds (fractions allowed).
function sleep(t)
  return nmap.socket.sleep(t)
end

local function thread_prefix(with_target)
  local id, label, _, ip, port, proto = engine.thread_info()
  if not id then return "" end
  local prefix = label or id
  if with_target and ip then
    prefix = prefix .. " " .. ip .. (port and (":" .. port) or "")
  end
  return "[" .. prefix .. "] "
end

local function log(level_now, args)
  local level, fmt = 1, args[1]
  local first = 2
  if type(fmt) == "number" then
    level, fmt, first = fmt, args[2], 3
  end
  if level_now < level then return end
  local message = format(fmt, table.unpack(args, first, args.n))
  return message
end

--- Print a debug message at a debugging level (default 1).
-- @usage stdnse.debug(2, "got %d bytes", #data)
function debug(...)
  local message = log(nmap.debugging(), table.pack(...))
  if message then nmap.log_write("stdout", thread_prefix(true) .. message) end
end

--- Print a message at a verbosity level (default 1).
function verbose(...)
  local message = log(nmap.verbosity(), table.pack(...))
  if message then nmap.log_write("stdout", thread_prefix(nmap.verbosity() >= 2) .. message) end
end

print_debug = debug
print_verbose = verbose

--- Run a function in a new worker thread of the calling script.
-- @param f The function.
-- @param ... Its arguments.
-- @return The worker's coroutine.
-- @return A function returning the worker's status and the error it died with, if any.
function new_thread(f, ...)
  return engine.new_thread(f, ...)
end

--- The coroutine of the calling thread (the base of any coroutines it made).
function base()
  return engine.base()
end

--- The calling thread's identifier.
function gettid()
  return engine.base()
end

--- The id (name) of the calling script.
function getid()
  return (engine.thread_info())
end

--- A description of the calling thread ("<id> M:<addr>" at debug level 2).
function getinfo()
  return select(2, engine.thread_info())
end

--- The host and port tables of the calling script thread.
function gethostport()
  return engine.host_port()
end

--- Whether the calling thread is a worker made by new_thread.
function isworker()
  return (select(3, engine.thread_info())) == true
end

--- Look up script arguments (the rules of nse-spec §3.2).
-- @param ... Argument names, or arrays of alternative names.
-- @return One value per argument, nil where absent.
function get_script_args(...)
  local args = nmap.registry.args or {}
  local results = {}
  local count = select("#", ...)
  for i = 1, count do
    local wanted = select(i, ...)
    if type(wanted) ~= "table" then wanted = {wanted} end
    for _, name in ipairs(wanted) do
      local found = args[name]
      if not found then
        for _, bare in ipairs(args) do
          if bare == name then found = 1 break end
        end
      end
      if not found and type(name) == "string" and name:find(".", 1, true) then
        local short = name:match("([^.]+)$")
        found = args[short]
        if not found then
          for _, bare in ipairs(args) do
            if bare == short then found = 1 break end
          end
        end
      end
      if found then results[i] = found break end
    end
  end
  return table.unpack(results, 1, count)
end

--- A table that keeps the order its keys were first set in (for structured output).
-- Re-assigning a key keeps its place; deleting and setting again moves it to the end.
-- @return The table; <code>#t</code> counts its keys and <code>t()</code> tells whether it
--         has any.
function output_table()
  local values, order = {}, {}
  local function position(key)
    for i, k in ipairs(order) do
      if k == key then return i end
    end
  end
  local mt = {}
  function mt.__index(_, key) return values[key] end
  function mt.__newindex(_, key, value)
    if value == nil then
      local i = position(key)
      if i then table.remove(order, i) end
    elseif values[key] == nil then
      order[#order + 1] = key
    end
    values[key] = value
  end
  function mt.__len() return #order end
  function mt.__call() return next(order) ~= nil end
  function mt.__pairs()
    local i = 0
    return function()
      i = i + 1
      local key = order[i]
      if key ~= nil then return key, values[key] end
    end, nil, nil
  end
  return setmetatable({}, mt)
end

--- Like require, but a missing module makes the calling script skip quietly.
function silent_require(name)
  local ok, module = pcall(require, name)
  if not ok then error(engine.SILENT_REQUIRE, 0) end
  return module
end

return _ENV
