---
-- Text tables for script output: cells added row by row, printed in aligned columns.
--
-- <code>tab.add</code> fills cells of the current row; <code>tab.nextrow</code> moves on to a
-- new row; <code>tab.addrow</code> adds a whole row and moves on. <code>tab.dump</code> (also
-- <code>tostring</code> of the table) gives the text: every column as wide as its widest cell
-- plus two spaces, the last cell of each row not padded, each row ending in a newline.
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values are
-- those scripts written for Nmap expect.
--
-- @usage
-- local t = tab.new()
-- tab.addrow(t, "PORT", "STATE")
-- tab.addrow(t, "80", "open")
-- return tab.dump(t)
--
-- @class module
-- @name tab

local assert, pairs, select, setmetatable, tostring, type =
      assert, pairs, select, setmetatable, tostring, type
local rep = string.rep
local concat = table.concat

local _ENV = {}

-- The highest column number used in a row (0 for an empty row).
local function last_column(row)
  local n = 0
  for c in pairs(row) do
    if type(c) == "number" and c > n then n = c end
  end
  return n
end

local function dump_table(t)
  local widths = {}
  local rows = 0
  while t[rows + 1] ~= nil do
    rows = rows + 1
    for c, v in pairs(t[rows]) do
      if type(c) == "number" and (widths[c] or 0) < #v then widths[c] = #v end
    end
  end
  local out = {}
  for r = 1, rows do
    local row = t[r]
    local n = last_column(row)
    for c = 1, n do
      local v = row[c] or ""
      out[#out + 1] = v
      if c < n then out[#out + 1] = rep(" ", (widths[c] or 0) - #v + 2) end
    end
    out[#out + 1] = "\n"
  end
  return concat(out)
end

--- Make a new, empty table (its <code>tostring</code> is its <code>dump</code>).
-- @return The table.
function new()
  return setmetatable({current_row = 1}, {__tostring = dump_table})
end

--- Put a string in a column of the current row (row 1 until <code>nextrow</code> is called).
-- @param t The table.
-- @param c The column number (from 1).
-- @param v The string.
-- @return true
local function add_cell(t, c, v)
  assert(t)
  assert(type(v) == "string")
  assert(type(c) == "number")
  local row = t[t.current_row]
  if row == nil then
    row = {}
    t[t.current_row] = row
  end
  row[c] = v
  return true
end

--- Move on to the next row.
-- @param t The table.
local function next_row(t)
  assert(t)
  if t[t.current_row] == nil then t[t.current_row] = {} end
  t.current_row = t.current_row + 1
end
add = add_cell
nextrow = next_row

--- Add a whole row, one column per argument (each converted with <code>tostring</code>), then
-- move on to the next row.
-- @param t The table.
-- @param ... The cells.
function addrow(t, ...)
  for i = 1, select("#", ...) do
    add_cell(t, i, tostring((select(i, ...))))
  end
  next_row(t)
end

--- The table as text: aligned columns, one line per row.
-- @param t The table.
-- @return The text.
function dump(t)
  assert(t)
  return dump_table(t)
end

return _ENV
