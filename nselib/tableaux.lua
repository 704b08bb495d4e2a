---
-- Helper functions for tables: copying, listing keys, inverting and searching.
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values are
-- those scripts written for Nmap expect.
--
-- @class module
-- @name tableaux

local error, ipairs, next, pairs, type = error, ipairs, next, pairs, type

local _ENV = {}

local function check_table(t, name)
  if type(t) ~= "table" then
    error("bad argument #1 to '" .. name .. "' (table expected, got " .. type(t) .. ")", 3)
  end
end

-- Deep copy; tables being copied on the current path are remembered so that a table containing
-- itself is copied into a table containing its copy rather than recursing forever.
local function deep_copy(t, in_progress)
  local copy = {}
  in_progress[t] = copy
  for k, v in pairs(t) do
    if type(v) == "table" then
      copy[k] = in_progress[v] or deep_copy(v, in_progress)
    else
      copy[k] = v
    end
  end
  in_progress[t] = nil
  return copy
end

--- Copy a table recursively: nested tables are copied too. Metatables are not copied.
-- @param t The table.
-- @return The copy.
function tcopy(t)
  check_table(t, "tcopy")
  return deep_copy(t, {})
end

--- Copy one level of a table: nested tables are shared with the original. Keys are read raw
-- (with <code>next</code>), and the metatable is not copied.
-- @param t The table.
-- @return The copy.
function shallow_tcopy(t)
  check_table(t, "shallow_tcopy")
  local copy = {}
  for k, v in next, t do copy[k] = v end
  return copy
end

--- Swap the keys and values of a one-to-one mapping.
-- @param t The table.
-- @return A table mapping each value of <code>t</code> to its key.
function invert(t)
  check_table(t, "invert")
  local inverted = {}
  for k, v in pairs(t) do inverted[v] = k end
  return inverted
end

--- The keys of a table, as an array (in <code>next</code> order).
-- @param t The table.
-- @return The array of keys.
function keys(t)
  check_table(t, "keys")
  local list = {}
  for k in next, t do list[#list + 1] = k end
  return list
end

--- Whether a table holds a value.
-- @param t The table to search.
-- @param item The value looked for.
-- @param array If true, only the array part (<code>ipairs</code>) is searched.
-- @return true if the value was found, else false.
-- @return The key or index where it was found, or nil.
function contains(t, item, array)
  check_table(t, "contains")
  local iterate = array and ipairs or pairs
  for k, v in iterate(t) do
    if v == item then return true, k end
  end
  return false, nil
end

return _ENV
