-- The Lua half of nsecluster's script engine (written for this project from nse-spec.md).
--
-- How this works:
-- * Every script thread is a coroutine kept in THREADS under an integer id; Python only ever
--   sees ids (a Lua thread handed to Python does not come back as a thread).
-- * Waiting is the only way a thread gives up the CPU, and it goes through one function,
--   suspend(): it yields the SUSPEND sentinel and an operation token that Python handed out
--   when it started the operation. Python resumes the thread, through K.resume, with the
--   operation's results, which become suspend()'s return values. Nothing else yields.
-- * Python functions called from here never block and never call back into Lua code that
--   could yield; they return either results or (PENDING, token).
-- * A script's own coroutine.resume/wrap pass SUSPEND yields up to the engine and resume the
--   inner coroutine with the answer, so nested coroutines can do I/O.
local py = ...  -- the Python bridge: a table of functions (see worker/nse/runtime.py)

local coroutine, debug, error, load, pairs, ipairs, next, rawget, setmetatable, getmetatable,
      tostring, type, table =
      coroutine, debug, error, load, pairs, ipairs, next, rawget, setmetatable, getmetatable,
      tostring, type, table
local pack, unpack = table.pack, table.unpack
local co_create, co_resume, co_yield, co_status, co_running =
      coroutine.create, coroutine.resume, coroutine.yield, coroutine.status, coroutine.running

local K = {}
local SUSPEND = setmetatable({}, {__tostring = function() return "NSE suspend" end})
local PENDING = py.PENDING          -- first result of a Python function that must wait
local RAISE = py.RAISE              -- first result of a Python function that raises
local NOTHING = py.NOTHING          -- the result of a Python function that returns no value
K.SUSPEND = SUSPEND

local THREADS = {}                  -- id -> coroutine
local DEADLINE = {}                 -- id -> deadline on the loop's clock, in ms
local ARGS = {}                     -- base thread id -> its rule/action arguments
local BASE_OF = {}                  -- worker thread id -> its base thread id
local THREAD_OF = setmetatable({}, {__mode = "k"})  -- coroutine -> base thread id
local CO_IDS = setmetatable({}, {__mode = "k"})     -- coroutine -> small integer
local CO_BY_ID = setmetatable({}, {__mode = "v"})
local next_co_id = 0
K.THREADS = THREADS

--- A stable small integer for a coroutine (mutex owners, socket owners cross to Python as ids).
local function co_id(co)
  local id = CO_IDS[co]
  if not id then
    next_co_id = next_co_id + 1
    id = next_co_id
    CO_IDS[co], CO_BY_ID[id] = id, co
  end
  return id
end
K.co_id = co_id
function K.co_by_id(id) return CO_BY_ID[id] end

local OBJ_IDS = setmetatable({}, {__mode = "k"})   -- table/function/userdata -> integer
local next_obj_id = 0

--- A stable integer naming a Lua object while it lives (mutex and condvar keys).
function K.object_id(obj)
  local id = OBJ_IDS[obj]
  if not id then
    next_obj_id = next_obj_id + 1
    id = next_obj_id
    OBJ_IDS[obj] = id
  end
  return id
end

--- The id of the engine thread (base or worker) the calling code runs in, or nil.
local function current_thread()
  local co = co_running()
  return THREAD_OF[co]
end
K.current_thread = current_thread

-- ---------------------------------------------------------------------------------------------
-- The one suspension point.

local function suspend(token)
  return co_yield(SUSPEND, token)
end

--- Finish a call to a Python API function: its results, the results of the wait it started,
--- or the error it raised (raised here, at level 0: C functions' errors carry no position).
local function settle(first, ...)
  if first == PENDING then
    if not THREAD_OF[co_running()] then
      error("this NSE operation can only be used from a script thread", 0)
    end
    return suspend((...))
  elseif first == RAISE then
    error((...), 0)
  elseif first == NOTHING then
    return
  end
  return first, ...
end
K.settle = settle

-- ---------------------------------------------------------------------------------------------
-- Scripts' own coroutines: engine suspensions inside them travel up to the engine.

local function pass_up(co, ok, first, ...)
  if ok and first == SUSPEND then
    -- the inner coroutine waits for the engine: wait with it, then hand it the answer
    return pass_up(co, co_resume(co, co_yield(SUSPEND, ...)))
  end
  return ok, first, ...
end

local function script_resume(co, ...)
  if type(co) == "thread" and THREAD_OF[co] == nil then
    THREAD_OF[co] = THREAD_OF[co_running()]  -- it serves the thread that first resumes it
  end
  return pass_up(co, co_resume(co, ...))
end

local function script_wrap(f)
  local co = co_create(f)
  return function(...)
    local r = pack(script_resume(co, ...))
    if not r[1] then
      error(r[2], 2)
    end
    return unpack(r, 2, r.n)
  end
end

-- ---------------------------------------------------------------------------------------------
-- Threads.

--- Create engine thread ``id`` running ``body(...)``; Python resumes it with K.resume.
function K.spawn(id, body, ...)
  local args = pack(...)
  local co = co_create(function() return body(unpack(args, 1, args.n)) end)
  THREADS[id] = co
  THREAD_OF[co] = id
  return id
end

local DIED_WITH = setmetatable({}, {__mode = "k"})  -- coroutine -> its error value
local KILLED = setmetatable({}, {__tostring = function() return "NSE thread timed out" end})
K.KILLED = KILLED

local function forget(id)
  THREADS[id], DEADLINE[id], ARGS[id], BASE_OF[id] = nil, nil, nil, nil
end

local function finish_resume(id, co, ok, first, ...)
  if not ok then
    forget(id)
    DIED_WITH[co] = first
    if first == KILLED then return "killed" end
    if type(first) == "table" and rawget(first, "errtype") == "nmap.new_try" then
      local message = rawget(first, "message")
      return "try", message ~= nil and tostring(message) or nil
    end
    return "error", tostring(first), debug.traceback(co, tostring(first))
  end
  if co_status(co) == "dead" then
    forget(id)
    return "done", first, ...
  end
  if first == SUSPEND then
    return "wait", (...)
  end
  forget(id)
  return "stray"  -- a plain coroutine.yield() at the thread's base level
end

--- Resume thread ``id`` with ``...``; returns ("wait", token) | ("done", results...) |
--- ("killed") | ("try", message) | ("error", message, traceback) | ("stray") | ("gone").
function K.resume(id, ...)
  local co = THREADS[id]
  if not co then return "gone" end
  return finish_resume(id, co, co_resume(co, ...))
end

function K.kill(id)
  forget(id)
end

--- A script's base thread: run the file again in a fresh environment, ask the rule (unless
--- forced), then run the action and render what it returns.
function K.script_thread(id, gen, path, name, kind, forced, nmap7, ...)
  ARGS[id] = pack(...)
  return K.spawn(id, function(...)
    local env = K.thread_env(path, name, kind, nmap7)
    gen(env)()
    if not forced then
      local rule = rawget(env, kind)
      if not rule(...) then return "rule-false" end
    end
    py.action_started()
    return K.render_result(rawget(env, "action")(...))
  end, ...)
end

--- The host and port tables the caller's script thread was given (nil, nil outside).
function K.host_port()
  local id = current_thread()
  local args = id and ARGS[BASE_OF[id] or id]
  if not args then return nil, nil end
  return args[1], args[2]
end

--- The coroutine of the engine thread (base or worker) the caller runs in.
function K.base()
  local id = THREAD_OF[co_running()]
  return id and THREADS[id] or nil
end

--- stdnse.new_thread: a worker thread of the calling script thread; ``info()`` tells its
--- status and the value it died with.
function K.new_worker(f, ...)
  local id, deadline = py.spawn_worker()
  if not id then
    error("stdnse.new_thread can only be run from an active script", 2)
  end
  local parent = current_thread()
  BASE_OF[id] = BASE_OF[parent] or parent
  K.spawn(id, f, ...)
  if deadline then K.set_deadline(id, deadline) end
  local co = THREADS[id]
  return co, function() return co_status(co), DIED_WITH[co] end
end

function K.thread_status(id)
  local co = THREADS[id]
  return co and co_status(co) or "dead"
end

-- ---------------------------------------------------------------------------------------------
-- CPU limits: a thread that runs too long without waiting is stopped by a count hook.

local HOOK_EVERY = 200000  -- instructions between deadline checks
local now_ms = py.now_ms

local function deadline_hook()
  local id = THREAD_OF[co_running()]
  local deadline = id and DEADLINE[id]
  if deadline and now_ms() > deadline then
    -- From now on every instruction raises, so not even a pcall loop can keep it alive.
    debug.sethook(co_running(), function() error(KILLED, 0) end, "", 1)
    error(KILLED, 0)
  end
end

function K.set_deadline(id, deadline_ms)
  DEADLINE[id] = deadline_ms
  local co = THREADS[id]
  if co then debug.sethook(co, deadline_hook, "", HOOK_EVERY) end
end

-- ---------------------------------------------------------------------------------------------
-- Script environments, strict globals and loading.

local G = _G
G.coroutine = setmetatable({resume = script_resume, wrap = script_wrap}, {__index = coroutine})

--- Make reading an undeclared global an error (after every library global is in place).
--- Only Lua code is refused: a C function reading through a chain of __index tables that
--- ends at _G (ipairs over an object whose class table falls back to _G, say) gets nil,
--- as with Nmap's strict.
function K.make_strict()
  local getinfo = debug.getinfo
  setmetatable(G, {
    __index = function(_, name)
      local caller = getinfo(2, "S")
      if caller == nil or caller.what == "C" then return nil end
      error("variable '" .. tostring(name) .. "' is not declared", 2)
    end,
  })
end

--- Compile a script's text into a closure generator: gen(env) -> main function.
function K.compile(text, path)
  -- The header shares line 1 with the script, so error line numbers stay right.
  local chunk, err = load("return function (_ENV) return function (...) " .. text ..
                          "\nend end", "@" .. path, "t")
  if not chunk then return nil, err end
  return chunk()
end

--- ``require`` looks in nselib directories first (nse-spec §1.3): ``find(name)`` gives the
--- file of module ``name`` or nil.
function K.install_searcher(find, stdnse_part)
  table.insert(package.searchers, 1, function(name)
    local path = find(name)
    if not path then
      return "\n\tNSE failed to find nselib/" .. name:gsub("%.", "/") .. ".lua in search paths."
    end
    local chunk, err = loadfile(path, "t")
    if not chunk then error(err, 0) end
    if name == "stdnse" then  -- an Nmap stdnse expects the engine to add its own part
      local load_stdnse = chunk
      chunk = function(...)
        local stdnse = load_stdnse(...)
        -- the engine's part replaces the stubs (getid, getinfo, gethostport) it has
        for field, value in pairs(stdnse_part) do rawset(stdnse, field, value) end
        return stdnse
      end
    end
    return chunk, path
  end)
end

local SILENT_REQUIRE = setmetatable({}, {__tostring = function()
  return "NSE silent_require: a module this script needs is not available" end})
K.SILENT_REQUIRE = SILENT_REQUIRE

local NMAP7_VIEW = nil  -- the nmap module as Nmap 7 scripts see it (set by K.set_nmap7_view)
local NMAP7_REQUIRE = nil

function K.set_nmap7_view(view)
  NMAP7_VIEW = view
  NMAP7_REQUIRE = function(name)
    if name == "nmap" then return view end
    return require(name)
  end
end

--- The globals an Nmap 7 script's environment overrides.
local function nmap7_fields(env, nmap7)
  if nmap7 then
    env.nmap, env.require = NMAP7_VIEW, NMAP7_REQUIRE
  end
  return env
end

--- The metadata run: execute the file once into a load env, in a throwaway coroutine.
function K.load_script(gen, path, name, nmap7)
  local env = nmap7_fields(setmetatable({SCRIPT_PATH = path, SCRIPT_NAME = name,
                                         categories = {}, dependencies = {}},
                                        {__index = G}), nmap7)
  local co = co_create(gen(env))
  local ok, err = co_resume(co)
  if not ok then
    if err == SILENT_REQUIRE then return "silent" end
    return "error", tostring(err), debug.traceback(co, tostring(err))
  end
  if co_status(co) ~= "dead" then
    return "error", "the script yielded while loading", ""
  end
  return "ok", env
end

local FIELDS = {"action", "categories", "dependencies", "prerule", "hostrule", "portrule",
                "postrule", "description", "author", "license"}

--- A loaded script's fields, read with rawget (the load env falls back to _G). A list with a
--- non-string entry comes back as false.
function K.metadata(env)
  local types = {}
  for _, name in ipairs(FIELDS) do
    local value = rawget(env, name)
    if value ~= nil then types[name] = type(value) end
  end
  local function strings(name)
    local list = rawget(env, name)
    if type(list) ~= "table" then return {} end
    for _, value in pairs(list) do
      if type(value) ~= "string" then return false end
    end
    local out = {}
    for i, value in ipairs(list) do out[i] = value end
    return out
  end
  local function str(name)
    local value = rawget(env, name)
    return type(value) == "string" and value or nil
  end
  return {types = types, categories = strings("categories"),
          dependencies = strings("dependencies"), description = str("description"),
          author = str("author"), license = str("license")}
end

function K.thread_env(path, name, kind, nmap7)
  return nmap7_fields(setmetatable({SCRIPT_PATH = path, SCRIPT_NAME = name,
                                    SCRIPT_TYPE = kind}, {__index = G}), nmap7)
end

-- ---------------------------------------------------------------------------------------------
-- Deep copy (host and port tables per thread) keeping the shared host registry.

local function tcopy(t, seen)
  if type(t) ~= "table" then return t end
  if seen[t] then return seen[t] end
  local copy = {}
  seen[t] = copy
  for k, v in next, t do
    copy[k] = tcopy(v, seen)
  end
  return setmetatable(copy, getmetatable(t))
end

function K.copy_host(host)
  local registry = rawget(host, "registry")
  local seen = {}
  if registry then seen[registry] = registry end
  return tcopy(host, seen)
end

function K.copy(t) return tcopy(t, {}) end

-- ---------------------------------------------------------------------------------------------
-- Output: action results to (display string, structure).  nse-spec §9.

local function format_value(value, indent)
  if type(value) ~= "table" then
    return tostring(value)
  end
  local mt = getmetatable(value)
  if mt and mt.__tostring then
    return tostring(value)
  end
  local parts = {}
  local count = 0
  for _, v in ipairs(value) do
    count = count + 1
    parts[#parts + 1] = "\n" .. indent .. format_value(v, indent .. "  ")
  end
  for k, v in pairs(value) do
    if type(k) == "string" then
      parts[#parts + 1] = "\n" .. indent .. k .. ": " .. format_value(v, indent .. "  ")
    end
  end
  return table.concat(parts)
end

-- The structure as nested {key-or-false, value} pairs of strings: array items, then string
-- keys; __tostring does not hide a table's contents here (nse-spec §9.4).
local function structure(value, depth)
  if depth > 64 then return tostring(value) end
  local items = {}
  for _, v in ipairs(value) do
    items[#items + 1] = {false, type(v) == "table" and structure(v, depth + 1) or tostring(v)}
  end
  for k, v in pairs(value) do
    if type(k) == "string" then
      items[#items + 1] = {k, type(v) == "table" and structure(v, depth + 1) or tostring(v)}
    end
  end
  return items
end

--- ("none") | ("text", display) | ("structured", display, structure). The structure of a
--- scalar is its string (XML writes it as the element's text).
function K.render_result(r1, r2)
  local tree
  if type(r1) == "table" then tree = structure(r1, 0) else tree = tostring(r1) end
  if r2 ~= nil then
    return "structured", tostring(r2), tree
  end
  if r1 == nil then return "none" end
  if type(r1) == "string" then return "text", r1 end
  if type(r1) == "table" then
    return "structured", format_value(r1, "  "), tree
  end
  return "structured", tostring(r1), tree
end

return K
