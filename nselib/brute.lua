---
-- A framework for scripts that guess credentials against a service.
--
-- A script supplies a <em>Driver</em> class and hands it to an <code>Engine</code>. The engine
-- makes a fresh driver (<code>Driver:new(host, port, options)</code>) for every guess and calls
-- <code>connect()</code>, <code>login(username, password)</code> and
-- <code>disconnect()</code> on it. <code>login</code> returns <code>true</code> and a
-- <code>creds.Account</code> when the guess worked, or <code>false</code> and a
-- <code>brute.Error</code> when it did not. Through the error the driver can ask for the same
-- guess to be retried (<code>setRetry</code>), stop everything (<code>setAbort</code>), stop
-- the calling worker (<code>setDone</code>), shed a worker (<code>setReduce</code>) or mark a
-- username as not existing (<code>setInvalidAccount</code>).
--
-- The engine runs its guesses in worker threads (<code>stdnse.new_thread</code>): it starts
-- <code>brute.start</code> of them and adds more while guesses go well, up to
-- <code>brute.threads</code>. Found accounts are stored with the <code>creds</code> library.
--
-- Guesses come, by default, from the <code>unpwdb</code> lists: first every username as its
-- own password (<code>brute.useraspass</code>), then, in <code>pass</code> mode, each password
-- against every username (<code>user</code> mode: each username with every password), or the
-- pairs of <code>brute.credfile</code> (<code>creds</code> mode). A script may set its own
-- iterator in <code>engine.iterator</code>, or its own username and password iterators.
--
-- <code>Engine:start()</code> returns a status and an output table with the found accounts
-- (key <code>Accounts</code>, or the title set with <code>Options:setTitle</code>), the
-- statistics and, after a failure, an <code>ERROR</code> entry.
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values
-- are those scripts written for Nmap expect.
--
-- @usage
-- Driver = {
--   new = function(self, host, port, options) ... end,
--   connect = function(self) ... return true end,
--   login = function(self, username, password)
--     ... return true, creds.Account:new(username, password, creds.State.VALID)
--     ... return false, brute.Error:new("Incorrect password")
--   end,
--   disconnect = function(self) ... return true end,
-- }
-- local engine = brute.Engine:new(Driver, host, port, options)
-- engine.options.script_name = SCRIPT_NAME
-- local status, result = engine:start()
-- return result
--
-- @args brute.useraspass Guess each username as its own password first (default true).
-- @args brute.unique Guess each password only once per username (default true).
-- @args brute.firstonly Stop after the first account found (default false).
-- @args brute.passonly Guess passwords only, with an empty username (default false).
-- @args brute.emptypass Guess only an empty password for each username (default false).
-- @args brute.retries How often a guess the driver asks to retry is retried (default 2).
-- @args brute.delay Seconds a worker waits between its guesses (default 0).
-- @args brute.threads The most worker threads (default 20).
-- @args brute.start The number of worker threads to start with (default 5).
-- @args brute.mode <code>user</code>, <code>pass</code> (default) or <code>creds</code>.
-- @args brute.credfile A file of <code>username/password</code> lines (<code>creds</code>
--       mode; not together with <code>userdb</code> or <code>passdb</code>).
-- @args brute.guesses The most guesses per username, 0 for no limit (default 0).
--
-- @class module
-- @name brute

local nmap = require "nmap"
local stdnse = require "stdnse"
local creds = require "creds"
local unpwdb = require "unpwdb"

local assert, coroutine, error, io, ipairs, math, next, os, pairs, rawget, setmetatable, tonumber,
      tostring, type = assert, coroutine, error, io, ipairs, math, next, os, pairs, rawget,
      setmetatable, tonumber, tostring, type
local format, table = string.format, table

local _ENV = {}
local M = _ENV

local function arg(name)
  return stdnse.get_script_args(name)
end

-- ---------------------------------------------------------------------------------------------
-- Options

--- The options of an engine, read from the <code>brute.*</code> script arguments.
Options = {}

--- Options from the script arguments.
-- @return The options.
function Options:new()
  local o = {}
  setmetatable(o, self)
  self.__index = self
  o.emptypass = self.checkBoolArg("brute.emptypass", false)
  o.useraspass = self.checkBoolArg("brute.useraspass", true)
  o.firstonly = self.checkBoolArg("brute.firstonly", false)
  o.passonly = self.checkBoolArg("brute.passonly", false)
  o.killstagnated = self.checkBoolArg("brute.killstagnated", true)
  o.max_retries = tonumber(arg("brute.retries")) or 2
  o.delay = tonumber(arg("brute.delay")) or 0
  o.max_guesses = tonumber(arg("brute.guesses")) or 0
  o.mode = arg("brute.mode")
  return o
end

--- A boolean script argument: true when it is <code>"true"</code> or <code>1</code>.
-- (Called with a dot: <code>Options.checkBoolArg(name, default)</code>.)
-- @param name The argument name.
-- @param default The value when the argument is absent.
-- @return The boolean.
function Options.checkBoolArg(name, default)
  local value = stdnse.get_script_args(name)
  if value == nil then value = default end
  return value == true or value == "true" or tonumber(value) == 1
end

--- Set the guessing mode: <code>user</code>, <code>pass</code> or <code>creds</code>.
-- @param mode The mode.
-- @return true, or false when the mode is unknown (the mode is then left as it was).
function Options:setMode(mode)
  if mode == "user" or mode == "pass" or mode == "creds" then
    self.mode = mode
    return true
  end
  stdnse.debug1("ERROR: brute.options.setMode: mode %s not supported", tostring(mode))
  return false
end

--- Set any option.
-- @param param The option's name.
-- @param value Its value.
function Options:setOption(param, value)
  self[param] = value
end

--- Set the title the found accounts are listed under (default <code>Accounts</code>).
-- @param title The title.
function Options:setTitle(title)
  self.title = title
end

-- ---------------------------------------------------------------------------------------------
-- Error

--- What a driver returns when a guess did not succeed.
Error = {retry = false}

--- A new error.
-- @param msg The message.
-- @return The error.
function Error:new(msg)
  local o = {msg = msg, done = false}
  setmetatable(o, self)
  self.__index = self
  return o
end

--- Whether the guess should be retried.
function Error:isRetry() return self.retry end
--- Ask for the guess to be retried.
-- @param r Boolean.
function Error:setRetry(r) self.retry = r end
--- Stop all guessing.
-- @param b Boolean.
function Error:setAbort(b) self.abort = b end
--- Whether all guessing should stop.
function Error:isAbort() return self.abort end
--- The message.
function Error:getMessage() return self.msg end
--- Whether the worker that got this error should stop.
function Error:isDone() return self.done end
--- Stop the worker that gets this error.
-- @param b Boolean.
function Error:setDone(b) self.done = b end
--- Mark a username as not existing, so it is not guessed again.
-- @param username The username.
function Error:setInvalidAccount(username) self.invalid_account = username end
--- The username marked as not existing, if any.
function Error:isInvalidAccount() return self.invalid_account end
--- Ask for one worker fewer.
-- @param r Boolean.
function Error:setReduce(r) self.reduce = r end
--- Whether a worker should be shed.
function Error:isReduce() return self.reduce and true or false end

-- ---------------------------------------------------------------------------------------------
-- Iterators: functions returning (username, password) pairs, then nil forever.

Iterators = {}

local function exhausted() return nil, nil end

--- Every (username, password) pair of two iterators.
-- @param users Username iterator.
-- @param pass Password iterator.
-- @param mode <code>"user"</code>: the username in the outer loop; <code>"pass"</code>: the
--        password in the outer loop.
-- @return The iterator.
function Iterators.account_iterator(users, pass, mode)
  local outer, inner = users, pass
  if mode == "pass" then outer, inner = pass, users end
  local current
  local done = false
  return function()
    while not done do
      if current == nil then
        current = outer()
        if current == nil then
          done = true
          break
        end
      end
      local value = inner()
      if value ~= nil then
        if mode == "pass" then return value, current end
        return current, value
      end
      inner("reset")
      current = nil
    end
    return exhausted()
  end
end

--- Each username with every password (username in the outer loop).
function Iterators.user_pw_iterator(users, pass)
  return M.Iterators.account_iterator(users, pass, "user")
end

--- Each password with every username (password in the outer loop).
function Iterators.pw_user_iterator(users, pass)
  return M.Iterators.account_iterator(users, pass, "pass")
end

--- Each username with itself as password.
-- @param users Username iterator (reset when it is used up).
-- @param case nil, <code>"upper"</code> or <code>"lower"</code>: the password's case.
function Iterators.pw_same_as_user_iterator(users, case)
  local done = false
  return function()
    if not done then
      local user = users()
      if user ~= nil then
        local password = user
        if case == "upper" then password = user:upper()
        elseif case == "lower" then password = user:lower() end
        return user, password
      end
      done = true
      users("reset")
    end
    return exhausted()
  end
end

--- Every username with every password in upper case.
-- @param users Username iterator.
-- @param passwords Password iterator.
-- @param mode As for <code>account_iterator</code>.
function Iterators.pw_ucase_iterator(users, passwords, mode)
  local upper = function(cmd)
    local value = passwords(cmd)
    if type(value) == "string" then return value:upper() end
    return value
  end
  return M.Iterators.account_iterator(users, upper, mode)
end

--- The pairs of an open file of <code>username/password</code> lines; a line without a
-- slash ends the list.
-- @param f The file handle.
function Iterators.credential_iterator(f)
  local done = false
  return function()
    while not done do
      local line = f:read("l")
      if line == nil then break end
      local user, pass = line:match("^([^/]*)/(.*)$")
      if user then return user, pass end
      break
    end
    done = true
    return exhausted()
  end
end

--- The unpwdb lists combined as in <code>account_iterator</code>.
-- @param mode <code>"user"</code> or <code>"pass"</code>.
-- @return The iterator, or nil when a list cannot be read.
function Iterators.unpwdb_iterator(mode)
  local status, users = unpwdb.usernames()
  if not status then return end
  local status2, pass = unpwdb.passwords()
  if not status2 then return end
  return M.Iterators.account_iterator(users, pass, mode)
end

--- The unpwdb username iterator (or, when the list cannot be read, its error message).
function usernames_iterator()
  local _, users = unpwdb.usernames()
  return users
end

--- The unpwdb password iterator (or, when the list cannot be read, its error message).
function passwords_iterator()
  local _, passwords = unpwdb.passwords()
  return passwords
end

-- ---------------------------------------------------------------------------------------------
-- Batch: a group of guesses collected before sending (for drivers that batch them).

Batch = {}

--- A new batch.
-- @param limit How many items make it full.
function Batch:new(limit)
  local o = {limit = limit, data = {}, size = 0, full = false, start_time = 0}
  setmetatable(o, self)
  self.__index = self
  return o
end

--- Whether the batch is full.
function Batch:isFull() return self.full end
--- The items.
function Batch:getData() return self.data end
--- The number of items.
function Batch:getSize() return self.size end
--- When the first item was added (seconds).
function Batch:getStartTime() return self.start_time end
--- The limit.
function Batch:getLimit() return self.limit end
--- Change the limit.
function Batch:setLimit(lim) self.limit = lim end

--- Add an item.
-- @param obj The item.
function Batch:add(obj)
  if self.size == 0 then self.start_time = os.time() end
  self.size = self.size + 1
  self.data[self.size] = obj
  if self.limit and self.size >= self.limit then self.full = true end
end

-- ---------------------------------------------------------------------------------------------
-- Engine

Engine = {
  STAT_INTERVAL = 20,
  -- worker coroutine -> the engine it works for
  THREAD_TO_ENGINE = setmetatable({}, {__mode = "k"}),
}

--- A new engine.
-- @param driver The Driver class.
-- @param host Host table.
-- @param port Port table.
-- @param options Table handed to each <code>Driver:new</code>.
-- @return The engine.
function Engine:new(driver, host, port, options)
  local o = {
    driver = driver,
    host = host,
    port = port,
    driver_options = options,
    terminate_all = false,
    error = nil,
    counter = 0,
    threads = {},
    tps = {},
    iterator = nil,
    usernames = M.usernames_iterator(),
    passwords = M.passwords_iterator(),
    found_accounts = {},
    account_guesses = {},
    options = M.Options:new(),
    retry_accounts = {},
    initial_accounts_exhausted = false,
    batch = nil,
    tick = 0,
    max_threads = tonumber(arg("brute.threads")) or 20,
    start_threads = tonumber(arg("brute.start")) or 5,
  }
  setmetatable(o, self)
  self.__index = self
  return o
end

--- The most worker threads.
function Engine:setMaxThreads(max) self.max_threads = max end
--- Replace the username iterator.
function Engine:setUsernameIterator(usernameIterator) self.usernames = usernameIterator end
--- Replace the password iterator.
function Engine:setPasswordIterator(passwordIterator) self.passwords = passwordIterator end

--- The engine a worker coroutine works for.
-- @param co The coroutine.
function Engine.getEngine(co)
  local engine = M.Engine.THREAD_TO_ENGINE[co]
  if not engine then
    stdnse.debug1("WARNING: No engine associated with thread: %s", tostring(co))
  end
  return engine
end

--- The bookkeeping table of a worker coroutine, if it is one.
-- @param co The coroutine.
function Engine.getThreadData(co)
  local engine = M.Engine.getEngine(co)
  if engine then return engine.threads[co] end
end

--- The number of worker threads still alive.
function Engine:threadCount()
  local count = 0
  for co in pairs(self.threads) do
    if coroutine.status(co) ~= "dead" then count = count + 1 end
  end
  return count
end

--- The number of worker threads guessing right now.
function Engine:activeThreads()
  local count = 0
  for co, data in pairs(self.threads) do
    if coroutine.status(co) ~= "dead" and data.guessing then count = count + 1 end
  end
  return count
end

--- Start one more worker thread.
-- @param cvar The engine's condition variable.
function Engine:addWorker(cvar)
  local co, info = stdnse.new_thread(self.login, self, cvar)
  self.threads[co] = {info = info, guessing = false, attempt = 0}
  M.Engine.THREAD_TO_ENGINE[co] = self
  return co
end

--- Start <code>n</code> more worker threads (never more than the maximum in all).
function Engine:addWorkerN(cvar, n)
  for _ = 1, n do
    if self:threadCount() >= self.max_threads then break end
    self:addWorker(cvar)
  end
end

local function skip_user(self, user)
  if user == nil then return false end
  if self.found_by_user[user] or self.invalid_accounts[user] then return true end
  local limit = self.options.max_guesses
  if limit and limit > 0 and (self.account_guesses[user] or 0) >= limit then return true end
  return false
end

--- The next credential to guess (skipping usernames already found, invalid or out of
-- guesses, and passwords already guessed as the username), or nil when there is none.
-- @return username, password
function Engine:get_next_credential()
  local guard = 0
  while true do
    guard = guard + 1
    if guard > 10000000 then return nil end  -- an iterator that never ends without values
    local user, pass = self.iterator()
    if user == nil and pass == nil then
      self.initial_accounts_exhausted = true
      return nil
    end
    local duplicate = self.unique_skip and pass ~= nil and pass == user and not self.first_phase
    if not skip_user(self, user) and not duplicate then
      -- Counted when handed out, so workers running at once keep within brute.guesses.
      if user ~= nil then
        self.account_guesses[user] = (self.account_guesses[user] or 0) + 1
      end
      return user, pass
    end
  end
end

-- Connect a fresh driver; returns it, or nil and the error.
local function connected_driver(self)
  local driver = self.driver:new(self.host, self.port, self.driver_options)
  local status, err = driver:connect()
  if status then return driver end
  return nil, err
end

-- One guess on a connected driver, retried (each time on a new connection) as the driver
-- asks.
-- @return status, the Account or the Error (or whatever the driver returned)
function Engine:doAuthenticate(user, pass, driver)
  local tries = (tonumber(self.options.max_retries) or 2) + 1
  if tries < 1 then tries = 1 end
  local response
  for attempt = 1, tries do
    if self.terminate_all then break end
    if attempt > 1 or not driver then
      local err
      driver, err = connected_driver(self)
      if not driver then response = err end
    end
    if driver then
      local status
      status, response = driver:login(user, pass)
      driver:disconnect()
      driver = nil
      if status then return true, response end
      local retry = response == nil or
                    (type(response) == "table" and type(response.isRetry) == "function" and
                     response:isRetry())
      if not retry then return false, response end
    end
    self.had_errors = true
  end
  return false, response
end

local function is_error(e, method)
  return type(e) == "table" and type(e[method]) == "function"
end

local function record_account(self, account)
  local user = account.username
  self.found_accounts[#self.found_accounts + 1] = account
  if user ~= nil then self.found_by_user[user] = true end
  creds.Credentials:new(self.options.script_name, self.host, self.port)
    :add(account.username, account.password, account.state)
  if self.options.firstonly then self.terminate_all = true end
end

-- After this many guesses in a row that could not even connect, the engine gives up.
local MAX_CONNECT_STREAK = 3
local SERVICE_FAILED = "The service seems to have failed or is heavily firewalled..."

--- The body of a worker thread: guess until there is nothing left or the engine stops.
-- @param cvar The engine's condition variable, broadcast when the worker ends.
function Engine:login(cvar)
  -- Registered on this worker, so the waiting engine wakes even if the driver raises.
  cvar = nmap.condvar(self)
  local data = self.threads[coroutine.running()] or {}
  while not self.terminate_all and not self.initial_accounts_exhausted do
    -- Like Nmap's engine: connect first, then take the next credential.
    local driver, err = connected_driver(self)
    if not driver then
      self.had_errors = true
      self.connect_streak = (self.connect_streak or 0) + 1
      if self.connect_streak >= MAX_CONNECT_STREAK then
        self.terminate_all = true
        self.error = SERVICE_FAILED
        break
      end
      goto continue
    end
    self.connect_streak = 0
    do
      local user, pass = self:get_next_credential()
      if user == nil and pass == nil then
        driver:disconnect()
        break
      end
      data.guessing = true
      local status, response = self:doAuthenticate(user, pass, driver)
      data.guessing = false
      if self.terminate_all and not status then break end
      self.counter = self.counter + 1
      if status then
        if type(response) == "table" then record_account(self, response) end
      elseif is_error(response, "isAbort") and response:isAbort() then
        self.terminate_all = true
        self.error = response:getMessage()
        break
      elseif is_error(response, "isDone") then
        local invalid = response:isInvalidAccount()
        if invalid then self.invalid_accounts[invalid] = true end
        if response:isDone() then break end
        if response:isReduce() and self:threadCount() > 1 then break end
      end
      if not self.had_errors and not self.terminate_all and
         self:threadCount() < self.max_threads then
        self:addWorker(cvar)
      end
      if tonumber(self.options.delay) and tonumber(self.options.delay) > 0 then
        stdnse.sleep(tonumber(self.options.delay))
      end
    end
    ::continue::
  end
  cvar("broadcast")
end

local function chain(first, second)
  local on_second = false
  return function()
    if not on_second then
      local u, p = first()
      if u ~= nil or p ~= nil then return u, p end
      on_second = true
    end
    return second()
  end
end

-- Build self.iterator; returns nil, or an error result for start().
function Engine:prepare_iterator()
  local options = self.options
  local credfile = arg("brute.credfile")
  local mode = options.mode
  if credfile and mode ~= "creds" then
    if arg("userdb") or arg("passdb") then
      return stdnse.format_output(false,
        "brute.credfile can't be used in combination with userdb/passdb")
    end
    mode = "creds"
  end
  if mode == "creds" then
    if not credfile then return "No credential file specified (see brute.credfile)" end
    local f = io.open(credfile, "r")
    if not f then return "Failed to open credfile (" .. credfile .. ")" end
    self.iterator = M.Iterators.credential_iterator(f)
    return nil
  end
  if type(self.usernames) ~= "function" and not options.passonly then
    return "Invalid usernames iterator: " .. tostring(self.usernames)
  end
  if type(self.passwords) ~= "function" and not options.emptypass then
    return "Invalid passwords iterator: " .. tostring(self.passwords)
  end
  local users = self.usernames
  if options.passonly then
    local given = false
    users = function(cmd)
      if cmd == "reset" then given = false return nil end
      if given then return nil end
      given = true
      return ""
    end
  end
  local main = self.iterator
  if main == nil then
    mode = mode or "pass"
    if mode ~= "user" and mode ~= "pass" then return "Unsupported mode: " .. tostring(mode) end
    if options.emptypass then
      self.iterator = M.Iterators.account_iterator(users, unpwdb.table_iterator({""}), "user")
      return nil
    end
    main = M.Iterators.account_iterator(users, self.passwords, mode)
  end
  if options.useraspass and not options.passonly and not options.emptypass then
    self.unique_skip = options.unique
    local same = M.Iterators.pw_same_as_user_iterator(users)
    local engine = self
    engine.first_phase = true
    self.iterator = chain(function()
      local u, p = same()
      if u == nil and p == nil then engine.first_phase = false end
      return u, p
    end, main)
  else
    self.iterator = main
  end
  return nil
end

local function statistics(self)
  local elapsed = math.ceil(nmap.clock() - self.starttime)
  if elapsed < 1 then elapsed = 1 end
  return format("Performed %d guesses in %d seconds, average tps: %.1f",
                self.counter, elapsed, self.counter / elapsed)
end

--- Run the guessing until the credentials run out, the first account is found with
-- <code>firstonly</code>, or the driver aborts.
-- @return status (false after an abort or failure)
-- @return The output table (or an error message when the engine could not start).
function Engine:start()
  assert(self.options.script_name, "SCRIPT_NAME was not set in options.script_name")
  self.options.unique = M.Options.checkBoolArg("brute.unique", true)
  self.invalid_accounts = self.invalid_accounts or {}
  self.found_by_user = self.found_by_user or {}
  local problem = self:prepare_iterator()
  if problem then return false, problem end

  local cvar = nmap.condvar(self)
  self.starttime = nmap.clock()
  local first = self.start_threads
  if first > self.max_threads then first = self.max_threads end
  if first < 1 then first = 1 end
  for _ = 1, first do self:addWorker(cvar) end

  while self:threadCount() > 0 do
    cvar("wait")
  end

  -- Workers that died with an error while credentials remained: the service gave up on us.
  if not self.terminate_all and not self.initial_accounts_exhausted then
    self.error = self.error or SERVICE_FAILED
  end

  local result = stdnse.output_table()
  local accounts = {}
  for _, account in ipairs(self.found_accounts) do accounts[#accounts + 1] = account end
  table.sort(accounts)
  local title = self.options.title or "Accounts"
  if #accounts > 0 then
    result[title] = accounts
  else
    result[title] = "No valid accounts found"
  end
  result.Statistics = statistics(self)
  if self.options.max_guesses and self.options.max_guesses > 0 then
    result.Information = format("Guesses restricted to %d tries per account to avoid lockout",
                                self.options.max_guesses)
  end
  if self.error then
    result.ERROR = self.error
    return false, result
  end
  return true, result
end

--- Batches are not used by the engine itself; a driver collecting guesses may keep one here.
function Engine:readyBatch()
  if self.batch and self.batch:isFull() then return self.batch end
end

--- Start a new, empty batch.
function Engine:renewBatch()
  local limit = self.batch and self.batch:getLimit()
  self.batch = M.Batch:new(limit)
  return self.batch
end

-- ---------------------------------------------------------------------------------------------
-- BruteSocket: a socket whose failures are noted for the engine.

--- The socket methods whose results are checked.
checkwrap = {connect = true, send = true, receive = true, receive_lines = true,
             receive_bytes = true, receive_buf = true}

BruteSocket = {}

--- Wrap a socket.
-- @param socket An nmap socket.
function BruteSocket:new(socket)
  local o = {socket = socket}
  setmetatable(o, self)
  self.__index = function(t, key)
    local method = rawget(M.BruteSocket, key)
    if method ~= nil then return method end
    local inner = rawget(t, "socket")
    local value = inner[key]
    if type(value) ~= "function" then return value end
    if M.checkwrap[key] then
      return function(wrapper, ...)
        local results = table.pack(value(inner, ...))
        wrapper:checkStatus(results[1], results[2])
        return table.unpack(results, 1, results.n)
      end
    end
    return function(_, ...) return value(inner, ...) end
  end
  return o
end

--- The wrapped socket.
function BruteSocket:getSocket() return self.socket end

--- Note a failed socket operation in the calling worker's bookkeeping.
-- @param status The operation's status.
-- @param err Its error.
function BruteSocket:checkStatus(status, err)
  if status then return end
  local data = M.Engine.getThreadData(coroutine.running())
  if data then data.socket_error = err end
end

--- A new socket wrapped as a BruteSocket.
function new_socket()
  return M.BruteSocket:new(nmap.new_socket())
end

--- The same as <code>creds.Account</code> (older scripts take it from here).
Account = creds.Account

return _ENV
