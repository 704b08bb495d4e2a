---
-- Strict variable declarations for module environments.
--
-- <code>require "strict"</code> returns a function that takes an environment table and makes it
-- strict: reading a variable that was never declared raises
-- <code>variable '&lt;name&gt;' is not declared</code>, and assigning a new variable from inside a
-- function (anywhere but a main chunk or C code) raises
-- <code>assign to undeclared variable '&lt;name&gt;'</code>. Assigning at the main chunk's top
-- level declares a variable, even when the value is nil.
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values are
-- those scripts written for Nmap expect.
--
-- @usage
-- local _ENV = require "strict" {}
-- x = 1            -- declared at the top level
-- local function f() return y end  -- f() raises "variable 'y' is not declared"
--
-- @class module
-- @name strict

local error, getmetatable, rawget, rawset, setmetatable, tostring, type =
      error, getmetatable, rawget, rawset, setmetatable, tostring, type
local getinfo = debug.getinfo

-- The kind of function ("main", "Lua" or "C") that triggered the metamethod calling this one.
local function caller_kind()
  local info = getinfo(3, "S")
  return info and info.what or "C"
end

--- Make an environment table strict.
-- @param env The table (usually a module's new <code>_ENV</code>).
-- @return The same table, with a metatable enforcing declarations. An <code>__index</code> the
--         table already had is still consulted first.
return function(env)
  local mt = getmetatable(env) or {}
  local declared = {}
  local inherited = mt.__index

  mt.__declared = declared

  mt.__newindex = function(t, name, value)
    if not declared[name] then
      local kind = caller_kind()
      if kind ~= "main" and kind ~= "C" then
        error("assign to undeclared variable '" .. tostring(name) .. "'", 2)
      end
      declared[name] = true
    end
    rawset(t, name, value)
  end

  mt.__index = function(t, name)
    if inherited ~= nil then
      local value
      if type(inherited) == "function" then
        value = inherited(t, name)
      else
        value = inherited[name]
      end
      if value ~= nil then return value end
    end
    if not declared[name] and caller_kind() ~= "C" then
      error("variable '" .. tostring(name) .. "' is not declared", 2)
    end
    return rawget(t, name)
  end

  return setmetatable(env, mt)
end
