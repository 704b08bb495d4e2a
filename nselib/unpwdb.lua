---
-- Username and password lists for scripts that guess credentials, as iterators.
--
-- <code>usernames()</code> and <code>passwords()</code> return <code>true</code> and an
-- iterator: each call gives the next entry, and nil (or nothing) at the end, when the count
-- limit is reached or when the time limit has passed. Calling an iterator with
-- <code>"reset"</code> starts it again from the first entry.
--
-- The lists are read from the files named by the script arguments <code>userdb</code> and
-- <code>passdb</code>, or from the <code>data/usernames.lst</code> and
-- <code>data/passwords.lst</code> files shipped beside this library. One entry a line; lines
-- starting with <code>#!comment:</code> are skipped, every other line (an empty one too) is
-- an entry.
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values
-- are those scripts written for Nmap expect.
--
-- @args userdb The file of usernames.
-- @args passdb The file of passwords.
-- @args unpwdb.userlimit The most usernames an iterator returns.
-- @args unpwdb.passlimit The most passwords an iterator returns.
-- @args unpwdb.timelimit How long an iterator keeps returning entries (<code>30s</code>,
--       <code>5m</code>, ...; a bare number is seconds; 0 means no limit). The default depends
--       on the timing level: 10 minutes, 5 at <code>-T4</code>, 3 at <code>-T5</code>, and half
--       as much again when <code>userdb</code> or <code>passdb</code> is given.
--
-- @usage
-- local ok, users = unpwdb.usernames()
-- local ok2, passwords = unpwdb.passwords()
-- for user in users do
--   for password in passwords do ... end
--   passwords("reset")
-- end
--
-- @class module
-- @name unpwdb

local nmap = require "nmap"
local stdnse = require "stdnse"

local error, io, ipairs, os, select, tonumber, type = error, io, ipairs, os, select, tonumber, type
local table = table

local MODULE_DIR = (select(2, ...) or ""):match("^(.*)[/\\][^/\\]*$")

local _ENV = {}
local M = _ENV

local COMMENT = "#!comment:"

-- The path of a list: the script argument, else our own data file, else the data search path.
local function list_path(arg_name, file_name)
  local given = stdnse.get_script_args(arg_name)
  if type(given) == "string" then
    return nmap.fetchfile(given) or given
  end
  if MODULE_DIR then
    local own = MODULE_DIR .. "/data/" .. file_name
    local f = io.open(own, "r")
    if f then
      f:close()
      return own
    end
  end
  return nmap.fetchfile("nselib/data/" .. file_name) or ("nselib/data/" .. file_name)
end

local function read_list(path)
  local file, err = io.open(path, "r")
  if not file then return nil, err end
  local entries = {}
  for line in file:lines() do
    if line:sub(1, #COMMENT) ~= COMMENT then
      entries[#entries + 1] = line
    end
  end
  file:close()
  return entries
end

--- The default time limit of the iterators, in seconds: the script argument
-- <code>unpwdb.timelimit</code>, else 10 minutes (3 at <code>-T5</code>, 5 at
-- <code>-T4</code>), half as much again when <code>userdb</code> or <code>passdb</code>
-- is given. Raises an error when the argument does not parse.
-- @return Seconds.
function timelimit()
  local given = stdnse.get_script_args("unpwdb.timelimit")
  if given then
    local seconds, err = stdnse.parse_timespec(given)
    if not seconds then error(err) end
    return seconds
  end
  local level = nmap.timing_level()
  local seconds = 600
  if level >= 5 then
    seconds = 180
  elseif level == 4 then
    seconds = 300
  end
  -- A list of one's own is often longer: half as much time again.
  if stdnse.get_script_args("userdb") or stdnse.get_script_args("passdb") then
    seconds = seconds * 3 // 2
  end
  return seconds
end

--- An iterator over the values of an array. <code>"reset"</code> starts again.
-- @param t The array.
-- @return The iterator.
function table_iterator(t)
  local i = 0
  return function(cmd)
    if cmd == "reset" then
      i = 0
      return nil
    end
    i = i + 1
    return t[i]
  end
end

--- Wrap an iterator so it stops after <code>time_limit</code> seconds or
-- <code>count_limit</code> values; <code>"reset"</code> resets the count and the inner
-- iterator (not the clock).
-- @param iterator The iterator.
-- @param time_limit Seconds, or nil/0 for no limit.
-- @param count_limit Values, or nil for no limit.
-- @return The iterator.
function limited_iterator(iterator, time_limit, count_limit)
  local start = os.time()
  local count = 0
  return function(cmd)
    if cmd == "reset" then
      count = 0
      return iterator("reset")
    end
    if time_limit and time_limit > 0 and os.time() - start > time_limit then return end
    if count_limit and count >= count_limit then return end
    count = count + 1
    return iterator()
  end
end

--- An iterator giving the values of <code>iter1</code>, then those of <code>iter2</code>.
-- @param iter1 The first iterator.
-- @param iter2 The second iterator.
-- @return The iterator.
function concat_iterators(iter1, iter2)
  local first_done = false
  return function(cmd)
    if cmd == "reset" then
      first_done = false
      iter1("reset")
      return iter2("reset")
    end
    if not first_done then
      local value = iter1()
      if value ~= nil then return value end
      first_done = true
    end
    local value = iter2()
    if value ~= nil then return value end
  end
end

--- An iterator giving only the values for which <code>filter(value)</code> is true.
-- @param iterator The iterator.
-- @param filter The test function.
-- @return The iterator.
function filter_iterator(iterator, filter)
  return function(cmd)
    if cmd == "reset" then return iterator("reset") end
    while true do
      local value = iterator()
      if value == nil then return nil end
      if filter(value) then return value end
    end
  end
end

local function list_iterator(arg_name, file_name, what, limit_arg, time_limit, count_limit)
  local entries, err = read_list(list_path(arg_name, file_name))
  if not entries then
    return false, "Error parsing " .. what .. " list: " .. err
  end
  if time_limit == nil then time_limit = M.timelimit() end
  if count_limit == nil then count_limit = tonumber(stdnse.get_script_args(limit_arg)) end
  return true, M.limited_iterator(M.table_iterator(entries), time_limit, count_limit)
end

--- The username list as an iterator.
-- @param time_limit Seconds the iterator runs (default <code>timelimit()</code>).
-- @param count_limit The most names it gives (default: script argument
--        <code>unpwdb.userlimit</code>, else no limit).
-- @return true and the iterator, or false and an error message.
function usernames(time_limit, count_limit)
  return list_iterator("userdb", "usernames.lst", "username", "unpwdb.userlimit",
                       time_limit, count_limit)
end

--- The password list as an iterator.
-- @param time_limit Seconds the iterator runs (default <code>timelimit()</code>).
-- @param count_limit The most passwords it gives (default: script argument
--        <code>unpwdb.passlimit</code>, else no limit).
-- @return true and the iterator, or false and an error message.
function passwords(time_limit, count_limit)
  return list_iterator("passdb", "passwords.lst", "password", "unpwdb.passlimit",
                       time_limit, count_limit)
end

return _ENV
