---
-- Credentials found by scripts, kept in the registry so that other scripts (and the
-- <code>creds-summary</code> style of reporting) can use them.
--
-- Every credential is stored in <code>nmap.registry.creds</code>, an array of entries
-- <code>{tags, host, port, service, user, pass, state}</code>. Scripts work with the
-- <code>Credentials</code> class, bound to a script name (or a list of names, or
-- <code>ALL_DATA</code>), and optionally to a host and a port:
--
-- <code>
-- local c = creds.Credentials:new(SCRIPT_NAME, host, port)
-- c:add("admin", "secret", creds.State.VALID)
-- for entry in c:getCredentials(creds.State.VALID) do ... end
-- return tostring(c)
-- </code>
--
-- Credentials given on the command line with the script arguments
-- <code>creds.[service]</code> and <code>creds.global</code> are returned by
-- <code>getCredentials</code> when its state includes <code>State.PARAM</code>.
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values
-- are those scripts written for Nmap expect.
--
-- @args creds.global Credentials (<code>user:pass</code>, several separated by commas) offered
--       to every script that asks for parameter credentials.
-- @args creds.[service] The same, for one service only (for example <code>creds.ftp</code>).
--
-- @class module
-- @name creds

local nmap = require "nmap"

local assert, ipairs, io, pairs, setmetatable, tostring, type =
      assert, ipairs, io, pairs, setmetatable, tostring, type
local format, table = string.format, table

local _ENV = {}
local M = _ENV

--- Account states; a state may be a sum of several of these bits.
State = {
  LOCKED = 1,
  VALID = 2,
  DISABLED = 4,
  CHANGEPW = 8,
  PARAM = 16,
  EXPIRED = 32,
  TIME_RESTRICTED = 64,
  HOST_RESTRICTED = 128,
  LOCKED_VALID = 256,
  DISABLED_VALID = 512,
  HASHED = 1024,
}

--- The text shown for each state.
StateMsg = {
  [M.State.LOCKED] = "Account is locked",
  [M.State.VALID] = "Valid credentials",
  [M.State.DISABLED] = "Account is disabled",
  [M.State.CHANGEPW] = "Valid credentials, password must be changed at next logon",
  [M.State.PARAM] = "Credentials passed to script during Nmap execution",
  [M.State.EXPIRED] = "Valid credentials, account expired",
  [M.State.TIME_RESTRICTED] = "Valid credentials, account cannot log in at current time",
  [M.State.HOST_RESTRICTED] = "Valid credentials, account cannot log in from current host",
  [M.State.LOCKED_VALID] = "Valid credentials, account locked",
  [M.State.DISABLED_VALID] = "Valid credentials, account disabled",
  [M.State.HASHED] = "Hashed valid or invalid credentials",
}

--- Passed instead of a script name: the credentials of every script.
ALL_DATA = {}

local EMPTY = "<empty>"

local function blank_if_empty(value)
  if value == nil or value == "" then return EMPTY end
  return value
end

-- ---------------------------------------------------------------------------------------------
-- Account

--- One account: a username, a password and a state.
Account = {}

--- Create an account.
-- @param username The username (may be nil when only a password matters).
-- @param password The password; nil or empty is shown as <code>&lt;empty&gt;</code>.
-- @param state A <code>State</code> value (its message is stored), or any text.
-- @return The account.
function Account:new(username, password, state)
  local o = {
    username = username,
    password = password,
    state = M.StateMsg[state] or state,
  }
  setmetatable(o, self)
  self.__index = self
  return o
end

--- Accounts sort by their state text.
function Account.__lt(a, b)
  return tostring(a.state) < tostring(b.state)
end

--- <code>user:pass - state</code>, or <code>pass - state</code> without a username.
function Account:__tostring()
  local text
  if self.username then
    text = self.username .. ":" .. blank_if_empty(self.password)
  else
    text = blank_if_empty(self.password)
  end
  return text .. " - " .. tostring(self.state)
end

-- ---------------------------------------------------------------------------------------------
-- RegStorage: the registry behind Credentials.

--- Access to the credentials stored in the registry, with an optional filter.
RegStorage = {}

--- A new storage object (no filter).
function RegStorage:new()
  local o = {filter = {}}
  setmetatable(o, self)
  self.__index = self
  return o
end

--- Store one credential.
-- @param tags Table of tags (the script names).
-- @param host Host table.
-- @param port Port number.
-- @param service Service name.
-- @param user Username.
-- @param pass Password.
-- @param state State value.
function RegStorage:add(tags, host, port, service, user, pass, state)
  local entry = {tags = tags, host = host, port = port, service = service, user = user,
                 pass = pass, state = state}
  local registry = nmap.registry
  registry.creds = registry.creds or {}
  table.insert(registry.creds, entry)
  return true
end

--- Restrict what <code>getAll</code> returns.
-- @param host Host table, or nil for every host.
-- @param port Port table or number, or nil for every port.
-- @param state State bits, or nil for every state: an entry passes when all its state bits
--        are among these (<code>VALID</code> does not select <code>VALID + EXPIRED</code>).
function RegStorage:setFilter(host, port, state)
  self.filter.host = host
  self.filter.port = port
  self.filter.state = state
end

local function host_matches(filter, host)
  if not filter then return true end
  if type(host) ~= "table" then return false end
  return (filter.ip ~= nil and filter.ip == host.ip) or
         (filter.ip == nil and filter.targetname == host.targetname)
end

local function port_matches(filter, number, service)
  if filter == nil then return true end
  if type(filter) == "table" then
    return filter.number == number and filter.service == service
  end
  return filter == number
end

local function tag_matches(wanted, tags)
  if wanted == nil or wanted == M.ALL_DATA then return true end
  for _, tag in ipairs(tags or {}) do
    if type(wanted) == "table" then
      for _, name in ipairs(wanted) do
        if name == tag then return true end
      end
    elseif wanted == tag then
      return true
    end
  end
  return false
end

--- An iterator over the stored entries the filter lets through.
function RegStorage:getAll()
  local entries = nmap.registry.creds or {}
  local filter = self.filter
  local i = 0
  return function()
    while true do
      i = i + 1
      local entry = entries[i]
      if entry == nil then return nil end
      if host_matches(filter.host, entry.host) and
         port_matches(filter.port, entry.port, entry.service) and
         (filter.state == nil or (type(entry.state) == "number" and
                                  (entry.state & filter.state) == entry.state)) then
        return entry
      end
    end
  end
end

-- ---------------------------------------------------------------------------------------------
-- Credentials

--- Credentials of one script (or several, or all) on one host and port.
Credentials = {}

--- Bind to a script, host and port.
-- @param scriptname The script name, an array of names, or <code>ALL_DATA</code>.
-- @param host Host table, or nil for every host.
-- @param port Port table, or nil for every port.
-- @return The object.
function Credentials:new(scriptname, host, port)
  local o = {
    host = host,
    port = port and port.number,
    service = port and port.service,
    storage = M.RegStorage:new(),
  }
  if scriptname == M.ALL_DATA then
    o.tags = M.ALL_DATA
  elseif type(scriptname) == "table" then
    o.tags = scriptname
  else
    o.tags = {scriptname}
  end
  o.storage:setFilter(host, port and {number = port.number, service = port.service}, nil)
  setmetatable(o, self)
  self.__index = self
  return o
end

--- Store a credential for this script, host and port.
-- @param username The username.
-- @param password The password (nil or empty is stored as <code>&lt;empty&gt;</code>).
-- @param state A <code>State</code> value.
function Credentials:add(username, password, state)
  assert(self.host, "No host supplied")
  assert(self.port, "No port supplied")
  assert(state, "No state supplied")
  local tags = self.tags
  if tags == M.ALL_DATA then tags = {} end
  self.storage:add(tags, self.host, self.port, self.service, username,
                   blank_if_empty(password), state)
end

-- Credentials the user gave as script arguments: creds.<service>, then creds.global.
local function param_credentials(service)
  local found = {}
  local names = {}
  if service then names[#names + 1] = "creds." .. service end
  names[#names + 1] = "creds.global"
  for _, name in ipairs(names) do
    local value = nmap.registry.args and nmap.registry.args[name]
    if type(value) == "string" then
      for item in value:gmatch("[^,]+") do
        local user, pass = item:match("^([^:]*):(.*)$")
        if not user then user = item end
        found[#found + 1] = {user = user, pass = pass, state = M.State.PARAM,
                             service = service}
      end
    end
  end
  return found
end

--- An iterator over this object's stored credentials (then, if <code>state</code> includes
-- <code>State.PARAM</code>, the ones given as script arguments). Each item is a table with
-- the fields <code>host, port, service, user, pass, state, tags</code>.
-- @param state State bits to select, or nil for every stored credential.
function Credentials:getCredentials(state)
  -- Like Nmap's, the state filter stays set for later calls that give no state.
  if state then self.storage.filter.state = state end
  local all = self.storage:getAll()
  local tags = self.tags
  local function stored()
    while true do
      local entry = all()
      if entry == nil or tag_matches(tags, entry.tags) then return entry end
    end
  end
  local params = {}
  if state and (state & M.State.PARAM) ~= 0 then
    params = param_credentials(self.service)
  end
  local p = 0
  return function()
    local entry = stored and stored()
    if entry then return entry end
    stored = nil
    p = p + 1
    return params[p]
  end
end

local function account_of(entry)
  return M.Account:new(entry.user, entry.pass, entry.state)
end

--- The stored credentials as Account objects, sorted by state: an array for one host and
-- port; otherwise grouped as <code>t["port/service"]</code> and, without a host,
-- <code>t[ip]["port/service"]</code>.
-- @return The table, or nil when there is none.
function Credentials:getTable()
  local result = {}
  local any = false
  for entry in self:getCredentials() do
    any = true
    local list
    if self.host and self.port then
      list = result
    else
      local group = result
      if not self.host then
        local ip = entry.host and entry.host.ip or "unknown"
        group[ip] = group[ip] or {}
        group = group[ip]
      end
      local key = format("%s/%s", tostring(entry.port), tostring(entry.service))
      group[key] = group[key] or {}
      list = group[key]
    end
    list[#list + 1] = account_of(entry)
  end
  if not any then return nil end
  local function sort_lists(t, depth)
    if #t > 0 or depth == 0 then
      table.sort(t)
    else
      for _, sub in pairs(t) do sort_lists(sub, depth - 1) end
    end
  end
  sort_lists(result, (self.host and 0 or 1) + (self.port and 0 or 1))
  return result
end

--- Write the credentials to <code>filename</code> plus an extension.
-- @param filename The file name without extension.
-- @param fileformat <code>"csv"</code> (<code>.csv</code>, quoted user, password and state),
--        <code>"verbose"</code> (<code>user:pass:state</code>) or anything else
--        (<code>user:pass</code>), both with the extension <code>.txt</code>.
-- @return true, or false and an error message.
function Credentials:saveToFile(filename, fileformat)
  local extension = fileformat == "csv" and ".csv" or ".txt"
  local path = filename .. extension
  local file = io.open(path, "w")
  if not file then
    return false, "ERROR: Failed to open file (" .. path .. ")"
  end
  for entry in self:getCredentials() do
    local account = account_of(entry)
    local user, pass = tostring(account.username), blank_if_empty(account.password)
    local line
    if fileformat == "csv" then
      line = format('"%s","%s","%s"', user, pass, tostring(account.state))
    elseif fileformat == "verbose" then
      line = format("%s:%s:%s", user, pass, tostring(account.state))
    else
      line = format("%s:%s", user, pass)
    end
    file:write(line, "\n")
  end
  file:close()
  return true
end

--- The same as <code>tostring(self:getTable())</code>.
function Credentials:__tostring()
  local all = self:getTable()
  if all then return tostring(all) end
end

return _ENV
