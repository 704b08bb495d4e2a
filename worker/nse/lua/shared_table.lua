-- A Lua table whose contents live outside this Lua state (worker/cluster/registry.py keeps
-- them in Redis), so every process of a scan sees one nmap.registry.
--
-- How this works: each shared table is a node with an id. A proxy is an empty Lua table
-- whose metatable sends reads, writes, #, and pairs to the store. Assigning a plain table
-- copies it into new nodes in one transaction, then turns that table (and the plain tables
-- inside it) into proxies in place, so a script that keeps a local alias and writes through
-- it later still writes to the shared table, as with an ordinary Lua table.
--
-- Two idioms read, then write, and would lose another process's write made in between:
-- appending (t[#t + 1] = v, table.insert) and creating a table if absent
-- (t[k] = t[k] or {}). A write right after the # of the same table, to the next index,
-- appends on the server (the first free index from there); a table written right after a
-- read of the same key that found nothing is created only if still absent (else the table
-- another process created is used, and this one's contents go into it).
--
-- A key that cannot cross processes (a table, such as httpspider's URL objects, a function)
-- keeps its entry in this process, beside the shared ones: its threads see it as in Nmap,
-- other processes do not.
local store, RAISE = ...

local error, getmetatable, next, pairs, pcall, rawset, setmetatable, type =
  error, getmetatable, next, pairs, pcall, rawset, setmetatable, type

local mtype = math.type
local node_of = setmetatable({}, {__mode = "k"})  -- proxy -> node id
local proxy_of = setmetatable({}, {__mode = "v"}) -- node id -> proxy (one per node)
local meta = {}
local local_of = setmetatable({}, {__mode = "k"}) -- proxy -> {key = value} kept here

local function shared_key(key)
  local kind = type(key)
  return kind == "string" or kind == "number" or kind == "boolean"
end

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

local counted, count    -- the proxy and result of the last #
local missed, missed_key -- the proxy and key of the last read that found nothing

-- Runs ``write(...)`` (calls of put) as one transaction: all of it lands, or none.
local function transaction(write, ...)
  checked(store.begin())
  local ok, err = pcall(write, ...)
  if not ok then
    store.abort()
    error(err, 0)
  end
  checked(store.commit())
end

-- Writes ``value``'s contents (a plain table) into ``node``.
local function fill(node, value, adopted)
  for k, v in next, value do put(node, k, v, adopted) end
end

meta.__index = function(p, key)
  if key ~= nil and not shared_key(key) then
    local here = local_of[p]
    return here and here[key]
  end
  local is_node, value = checked(store.get(node_of[p], key))
  if value == nil then missed, missed_key = p, key else missed = nil end
  return visible(is_node, value)
end

meta.__newindex = function(p, key, value)
  if key == nil then error("index is nil", 2) end
  if not shared_key(key) then
    local here = local_of[p] or {}
    local_of[p] = here
    here[key] = value
    return
  end
  local node = node_of[p]
  local append = counted == p and mtype(key) == "integer" and key == count + 1
  local create = missed == p and missed_key == key and mtype(key) ~= "integer"  -- not lists
  counted, missed = nil, nil
  storable(value)
  if type(value) ~= "table" then  -- one write: no transaction needed
    if append and value ~= nil then
      checked(store.append(node, key, value))
    else
      checked(store.put(node, key, value))
    end
    return
  end
  local adopted = {}
  if (append or create) and not node_of[value] then
    local child = checked(store.new_node())
    if create then child = checked(store.claim(node, key, child)) end
    adopted[value] = child
    transaction(fill, child, value, adopted)
    if append then checked(store.append_node(node, key, child)) end
  else
    transaction(put, node, key, value, adopted)
  end
  adopt(adopted)
end

meta.__len = function(p)
  local n = checked(store.length(node_of[p]))
  counted, count = p, n
  return n
end

-- pairs walks a snapshot taken when the loop starts (keys added meanwhile may be missed,
-- as with next over a table being filled).
meta.__pairs = function(p)
  local items = checked(store.items(node_of[p]))  -- {k1, is_node1, v1, k2, ...}
  local i = -2
  local here, key_here = local_of[p], nil
  return function()
    i = i + 3
    local key = items[i]
    if key ~= nil then return key, visible(items[i + 1], items[i + 2]) end
    if here == nil then return nil end
    local value
    key_here, value = next(here, key_here)
    return key_here, value
  end, p, nil
end

meta.__name = "nmap.registry"

return function(root_node) return proxy(root_node) end
