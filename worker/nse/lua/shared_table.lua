-- A Lua table whose contents live outside this Lua state (worker/cluster/registry.py keeps
-- them in Redis), so every process of a scan sees one nmap.registry.
--
-- How this works: each shared table is a node with an id. A proxy is an empty Lua table
-- whose metatable sends reads, writes, #, and pairs to the store. Assigning a plain table
-- copies it into new nodes in one transaction, then turns that table (and the plain tables
-- inside it) into proxies in place, so a script that keeps a local alias and writes through
-- it later still writes to the shared table, as with an ordinary Lua table.
local store, RAISE = ...

local error, getmetatable, next, pairs, pcall, rawset, setmetatable, type =
  error, getmetatable, next, pairs, pcall, rawset, setmetatable, type

local node_of = setmetatable({}, {__mode = "k"})  -- proxy -> node id
local proxy_of = setmetatable({}, {__mode = "v"}) -- node id -> proxy (one per node)
local meta = {}

local function checked(first, ...)
  if first == RAISE then error(..., 3) end
  return first, ...
end

local function proxy(node)
  local p = proxy_of[node]
  if p == nil then
    p = setmetatable({}, meta)
    node_of[p], proxy_of[node] = node, p
  end
  return p
end

-- A stored value as the script sees it: a node reference becomes its proxy.
local function visible(is_node, value)
  if is_node then return proxy(value) end
  return value
end

local function storable(value)
  local kind = type(value)
  if kind == "table" and (node_of[value] or getmetatable(value) == nil) then return end
  if kind == "nil" or kind == "string" or kind == "number" or kind == "boolean" then return end
  error(("nmap.registry cannot share a %s across processes (only strings, numbers, " ..
    "booleans and plain tables)"):format(kind == "table" and "table with a metatable" or kind), 3)
end

-- Writes ``value`` under ``key`` of ``node`` into the open batch; plain tables are given
-- nodes (the same node for a table met twice) and collected in ``adopted``.
local function put(node, key, value, adopted)
  storable(value)
  if type(value) ~= "table" then
    checked(store.put(node, key, value))
    return
  end
  local child = node_of[value] or adopted[value]
  if child == nil then
    child = checked(store.new_node())
    adopted[value] = child
    for k, v in next, value do put(child, k, v, adopted) end
  end
  checked(store.put_node(node, key, child))
end

-- After the batch landed: the copied plain tables become proxies of their nodes.
local function adopt(adopted)
  for tbl, node in pairs(adopted) do
    local keys = {}
    for k in next, tbl do keys[#keys + 1] = k end
    for i = 1, #keys do rawset(tbl, keys[i], nil) end
    node_of[tbl], proxy_of[node] = node, tbl
    setmetatable(tbl, meta)
  end
end

meta.__index = function(p, key)
  return visible(checked(store.get(node_of[p], key)))
end

meta.__newindex = function(p, key, value)
  if key == nil then error("index is nil", 2) end
  if type(value) ~= "table" then  -- one write: no transaction needed
    storable(value)
    checked(store.put(node_of[p], key, value))
    return
  end
  local adopted = {}
  checked(store.begin())
  local ok, err = pcall(put, node_of[p], key, value, adopted)
  if not ok then
    store.abort()
    error(err, 0)
  end
  checked(store.commit())
  adopt(adopted)
end

meta.__len = function(p)
  return (checked(store.length(node_of[p])))
end

-- pairs walks a snapshot taken when the loop starts (keys added meanwhile may be missed,
-- as with next over a table being filled).
meta.__pairs = function(p)
  local items = checked(store.items(node_of[p]))  -- {k1, is_node1, v1, k2, ...}
  local i = -2
  return function()
    i = i + 3
    local key = items[i]
    if key == nil then return nil end
    return key, visible(items[i + 1], items[i + 2])
  end, p, nil
end

meta.__name = "nmap.registry"

return function(root_node) return proxy(root_node) end
