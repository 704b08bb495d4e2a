---
-- Helpers for script output: lists shown with a separator, tables iterated in key order.
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values are
-- those scripts written for Nmap expect.
--
-- @class module
-- @name outlib

local getmetatable, pairs, setmetatable = getmetatable, pairs, setmetatable
local concat, sort = table.concat, table.sort

local _ENV = {}

--- A view of a table whose <code>pairs</code> gives the keys in sorted order (keys must be
-- comparable with each other). Handy for structured output. The view only iterates: it reads
-- the table's keys when iteration starts and indexes nothing itself.
-- @param t The table.
-- @return The view.
function sorted_by_key(t)
  return setmetatable({}, {
    __pairs = function()
      local order = {}
      for k in pairs(t) do order[#order + 1] = k end
      sort(order)
      local i = 0
      return function()
        i = i + 1
        local k = order[i]
        if k ~= nil then return k, t[k] end
      end, order, nil
    end,
  })
end

--- Make an array show as its elements joined by a separator when converted with
-- <code>tostring</code> (in normal output), while staying a list in structured output.
-- The table is changed in place (its metatable gains <code>__tostring</code>).
-- @param t The array.
-- @param sep The separator (default <code>", "</code>).
function list_sep(t, sep)
  sep = sep or ", "
  local mt = getmetatable(t) or {}
  mt.__tostring = function(self) return concat(self, sep) end
  setmetatable(t, mt)
end

return _ENV
