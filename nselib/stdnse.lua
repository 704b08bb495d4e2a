---
-- Standard functions for NSE scripts: threads, sleeping, logging, script arguments, ordered
-- output tables, conversions, timeouts, registry helpers and module helpers.
--
-- Written for nsecluster from the NSE specification, the NSEDoc of Nmap's stdnse and
-- observation of Nmap 7.93; the names, arguments and return values are those scripts written
-- for Nmap expect, and the set of names is 7.93's (reading any other name is an error).
--
-- @class module
-- @name stdnse

local nmap = require "nmap"
local engine = require "nsecluster.engine"

local error, ipairs, next, pairs, pcall, rawget, rawset, require, select, setmetatable,
      tostring, tonumber, type, print, _G =
      error, ipairs, next, pairs, pcall, rawget, rawset, require, select, setmetatable,
      tostring, tonumber, type, print, _G
local format, table = string.format, table
local byte, char, find, gmatch, gsub, match, rep, sub =
      string.byte, string.char, string.find, string.gmatch, string.gsub, string.match,
      string.rep, string.sub
local concat = table.concat

local _ENV = {}

-- sleep, new_thread, base, gettid, getid, getinfo, gethostport, isworker, silent_require:
-- the engine's part (worker/nse/lua/stdnse_engine.lua), as in Nmap, which the engine sets on
-- this module's table once it has loaded (kernel.install_searcher); nothing here uses them.

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

-- debug1 .. debug5 and verbose1 .. verbose5: the level is in the name.
local debug_at, verbose_at = debug, verbose
for level = 1, 5 do
  _ENV["debug" .. level] = function(...) return debug_at(level, ...) end
  _ENV["verbose" .. level] = function(...) return verbose_at(level, ...) end
end

--- Deprecated form of debug: the message is printed without the thread prefix (scripts of
-- old passed their name themselves).
function print_debug(...)
  local message = log(nmap.debugging(), table.pack(...))
  if message then nmap.log_write("stdout", message) end
end

--- Deprecated form of verbose, without the thread prefix.
function print_verbose(...)
  local message = log(nmap.verbosity(), table.pack(...))
  if message then nmap.log_write("stdout", message) end
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

-- ---------------------------------------------------------------------------------------------
-- Time.

--- The current time in milliseconds since the epoch (a float).
function clock_ms()
  return nmap.clock() * 1000
end

--- The current time in microseconds since the epoch (a float).
function clock_us()
  return nmap.clock() * 1000000
end

--- A timeout in milliseconds for talking to a host, scaled from Nmap's estimate of the host's
-- round-trip timeout (host.times.timeout, seconds) and kept within the given bounds.
-- @param host The host table (or nil).
-- @param max_timeout Upper bound in ms (default 8000); also the answer when nothing is known.
-- @param min_timeout Lower bound in ms (default 1000).
function get_timeout(host, max_timeout, min_timeout)
  max_timeout = max_timeout or 8000
  min_timeout = min_timeout or 1000
  local known = host and host.times and host.times.timeout
  if not known then return max_timeout end
  local ms = known * (max_timeout + 6000) / 7
  if ms < min_timeout then return min_timeout end
  if ms > max_timeout then return max_timeout end
  return ms
end

local TIME_UNITS = {[""] = 1, s = 1, ms = 0.001, m = 60, h = 3600}

--- Parse a duration such as "10", "500ms", "1.5m" or "2h" into seconds.
-- @return The number of seconds, or nil and an error message.
function parse_timespec(timespec)
  if timespec == nil then return nil, "Can't parse nil timespec" end
  local number, unit = match(timespec, "^([%d.]*)(.*)$")
  number = tonumber(number)
  if not number then
    return nil, format("Can't parse time specification \"%s\"", timespec)
  end
  local factor = TIME_UNITS[unit]
  if not factor then
    return nil, format("Can't parse time specification \"%s\" (bad unit \"%s\")", timespec, unit)
  end
  return number * factor
end

-- ---------------------------------------------------------------------------------------------
-- Number and string conversions.

local function byte_hex(c)
  return format("%02x", byte(c))
end

--- Hexadecimal text of a string (two digits a byte) or of a number.
-- @param s A string or a number.
-- @param options Table: <code>separator</code>, <code>group</code>. (Nmap 7.93 checks them
--        but its result never contains the separator; so does this one.)
local function tohex_(s, options)
  options = options or {}
  local kind = type(s)
  if kind == "number" then
    return format("%x", s)
  elseif kind ~= "string" then
    error("Type not supported in tohex(): " .. kind, 0)
  end
  local hex = gsub(s, ".", byte_hex)
  local separator = options.separator
  if separator and #hex > 0 then
    -- Nmap 7.93 works out the groups and then returns the digits without them; only its
    -- failures show: a group size that is no number (text counts as one) or zero, and a
    -- separator that is not text when there is more than one group.
    local group = options.group or 2
    if type(group) == "string" and tonumber(group) then group = tonumber(group) + 0.0 end
    if type(group) ~= "number" then
      error(format("attempt to perform arithmetic on a %s value (upvalue 'group')", type(group)))
    end
    local _ = #hex % group
    local kind = type(separator)
    if #hex // group > 1 and kind ~= "string" and kind ~= "number" then
      error(format("attempt to concatenate a %s value (upvalue 'separator')", kind))
    end
  end
  return hex
end
tohex = tohex_

--- Bytes from hexadecimal text; white space is ignored.
-- @return The bytes and how many there are, or nil and an error message.
function fromhex(hex)
  local bad = find(hex, "[^%x%s]")
  if bad then
    return nil, "Invalid hexadecimal digits at position " .. bad
  end
  hex = gsub(hex, "%s+", "")
  if #hex % 2 ~= 0 then
    return nil, "Odd number of hexadecimal digits"
  end
  return gsub(hex, "%x%x", function(pair) return char(tonumber(pair, 16)) end)
end

local NIBBLE_BITS = {}
for value = 0, 15 do
  local bits = ""
  for bit = 3, 0, -1 do bits = bits .. ((value >> bit) & 1) end
  NIBBLE_BITS[format("%x", value)] = bits
end

--- Binary text of an integer, four digits per hexadecimal digit.
-- @return The text and its number of hexadecimal digits.
function tobinary(n)
  return gsub(format("%x", n), "%x", NIBBLE_BITS)
end

--- Octal text of an integer.
function tooctal(n)
  return (format("%o", n))
end

--- A MAC address (6 bytes) as text. Nmap 7.93's version gives plain hexadecimal digits.
function format_mac(mac)
  return tohex_(mac, {separator = ":"})
end

--- The string, or <code>blank</code> (default "&lt;blank&gt;") when it is nil or empty.
function string_or_blank(string, blank)
  if string == nil or string == "" then
    return blank or "<blank>"
  end
  return string
end

--- The best name for a host: the target name given, else the reverse DNS name, else the IP.
function get_hostname(host)
  if type(host) == "table" then
    if host.targetname then return host.targetname end
    if host.name and host.name ~= "" then return host.name end
    return host.ip
  end
  return host
end

-- ---------------------------------------------------------------------------------------------
-- The registry.

--- The registry value at the path <code>subkeys</code> (an array of keys), or nil.
local function registry_get_(subkeys)
  local value = nmap.registry
  for _, key in ipairs(subkeys) do
    if value == nil then return nil end
    value = value[key]
  end
  return value
end
registry_get = registry_get_

--- Whether the registry table at <code>subkeys</code> holds <code>value</code> (under
-- <code>key</code>, or under any key when <code>key</code> is nil).
local function registry_exists_(subkeys, key, value)
  local t = registry_get_(subkeys)
  if t == nil then return false end
  for k, v in pairs(t) do
    if (key == nil or key == k) and v == value then return true end
  end
  return false
end
registry_exists = registry_exists_

-- The table at ``subkeys``, made where missing.
local function registry_table(subkeys)
  local t = nmap.registry
  for _, key in ipairs(subkeys) do
    if t[key] == nil then t[key] = {} end
    t = t[key]
  end
  return t
end

--- Append <code>value</code> to the registry array at <code>subkeys</code> (made if missing)
-- unless the array holds it already. (<code>allow_duplicates</code> changes nothing in Nmap
-- 7.93 either.)
function registry_add_array(subkeys, value, allow_duplicates)
  local t = registry_table(subkeys)
  if not registry_exists_(subkeys, nil, value) then
    table.insert(t, value)
  end
end

--- Set <code>key</code> = <code>value</code> in the registry table at <code>subkeys</code>
-- (made if missing), unless that pair is there already.
function registry_add_table(subkeys, key, value, allow_duplicates)
  local t = registry_table(subkeys)
  if not registry_exists_(subkeys, key, value) then
    t[key] = value
  end
end

-- ---------------------------------------------------------------------------------------------
-- Output.

-- The lines format_output prints for one string: split at newlines (one trailing newline
-- ends the last line), and in each line only what follows its last carriage return.
local function text_lines(text)
  if sub(text, -1) == "\n" then text = sub(text, 1, -2) end
  local lines = {}
  for line in gmatch(text .. "\n", "([^\n]*)\n") do
    lines[#lines + 1] = match(line, "([^\r]*)$")
  end
  return lines
end

--- Deprecated: format a (nested) table of strings as indented script output.
-- Each table may carry a <code>name</code> and a <code>warning</code>, printed above its
-- entries; when <code>status</code> is false every line starts with "ERROR: ".
-- @return The text (it starts with a newline unless <code>indent</code> is given), or nil
--         for empty data.
function format_output(status, data, indent)
  if data == nil then error("No data was passed to format_output()") end
  if #data == 0 then return nil end
  if type(data) == "string" then data = {data} end
  local marker = status and "" or "ERROR: "
  local out = {}
  local function line(depth, text)
    out[#out + 1] = rep("  ", depth) .. marker .. text
  end
  local function walk(t, depth, nesting)
    local name, warning = t.name, t.warning
    if warning then
      line(depth, (name and name .. " " or "") .. "(WARNING: " .. warning .. ")")
    elseif name then
      line(depth, name)
    end
    for _, item in ipairs(t) do
      if type(item) == "string" then
        for _, text in ipairs(text_lines(item)) do line(depth + 1, text) end
      elseif type(item) == "table" and #item > 0 then
        walk(item, nesting + 1, nesting + 1)
      end
    end
  end
  walk(data, indent and #indent or 0, 0)
  if #out == 0 then  -- nothing printable
    if indent == nil then return nil end
    return ""
  end
  return (indent == nil and "\n" or "") .. concat(out, "\n") .. "\n"
end

--- Print a Lua value readably through <code>printer</code> (default print), piece by piece.
function pretty_printer(obj, printer)
  printer = printer or print
  local function show(value, depth)
    if type(value) == "table" then
      printer("{\n")
      local inner = rep("\t", depth + 1)
      for k, v in pairs(value) do
        printer(inner)
        printer("[")
        show(k, depth + 1)
        printer("] = ")
        show(v, depth + 1)
        printer(",\n")
      end
      printer(rep("\t", depth) .. "}")
    elseif type(value) == "string" then
      printer(format("%q", value))
    else
      printer(tostring(value))
    end
  end
  show(obj, 0)
end

-- ---------------------------------------------------------------------------------------------
-- Sockets and modules.

--- A function returning, call after call, the pieces of what <code>sock</code> receives
-- between matches of the pattern <code>sep</code> (the separator itself left out). Data left
-- at the end is returned too; after that, nil and the socket's error.
function make_buffer(sock, sep)
  local pending = ""
  local finished, reason  -- set once the data left over at a failure has been returned
  return function()
    if finished then return nil, reason end
    while true do
      local first, last = find(pending, sep)
      if first then
        local piece = sub(pending, 1, first - 1)
        pending = sub(pending, last + 1)
        return piece
      end
      local status, data = sock:receive()
      if not status then
        if pending == "" then return status, data end  -- the next call reads again
        local rest = pending
        pending, finished, reason = "", true, data
        return rest
      end
      pending = pending .. data
    end
  end
end

--- Something like Lua 5.1's <code>module</code>: a fresh environment table for a library
-- named <code>name</code> (with _M, _NAME and, for dotted names, _PACKAGE), passed to each
-- of the functions given.
function module(name, ...)
  local env = {}
  env._M = env
  env._NAME = name
  env._PACKAGE = match(name, "^(.*)%.[^.]*$")
  for i = 1, select("#", ...) do
    (select(i, ...))(env)
  end
  return env
end

--- Make globals visible through <code>env</code> (for use with module).
function seeall(env)
  setmetatable(env, {__index = _G})
end

-- Reading a name stdnse does not define is an error, as in Nmap (whose stdnse is strict).
setmetatable(_ENV, {__index = function(_, name)
  error("variable '" .. tostring(name) .. "' is not declared", 2)
end})

return _ENV
