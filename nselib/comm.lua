---
-- Common network exchanges: grab a banner, send a request and read the answer, open a
-- connection trying plain TCP and SSL.
--
-- Written for nsecluster from the NSEDoc of Nmap's comm and from observing Nmap 7.93; the
-- names, arguments, return values and error chains are those scripts written for Nmap expect.
--
-- The functions return a status first, so they suit <code>nmap.new_try</code>. Errors are
-- error stacks as the <code>oops</code> library makes them (a table of messages, outermost
-- first, printing as "The script encountered an error:\n- a:\n- b").
--
-- Options (all optional):
-- * <code>bytes</code>: read at least this many bytes.
-- * <code>lines</code>: read at least this many lines (wins over <code>bytes</code>).
-- * <code>proto</code>: "tcp", "udp" or "ssl" (default: the port's protocol, else "tcp").
-- * <code>timeout</code>: the default for both timeouts below, in ms.
-- * <code>connect_timeout</code>: for connecting (default <code>stdnse.get_timeout(host)</code>).
-- * <code>request_timeout</code>: added to the connect timeout to wait for an answer
--   (default 6000).
-- * <code>recv_before</code>: read what the service says before sending anything.
-- * <code>any_af</code>: accepted; names are resolved as the socket resolves them.
-- Without <code>bytes</code> and <code>lines</code> one read returns what has arrived.
--
-- @class module
-- @name comm

local nmap = require "nmap"
local stdnse = require "stdnse"
local shortport = require "shortport"

local getmetatable, insert, ipairs, pcall, require, select, setmetatable, type =
      getmetatable, table.insert, ipairs, pcall, require, select, setmetatable, type
local concat = table.concat

-- The oops library when there is one; otherwise the same kind of error stack, made here.
local has_oops, oops = pcall(require, "oops")
if not has_oops then
  local Oops = {}
  Oops.__index = Oops
  Oops.__tostring = function(self)
    return "The script encountered an error:\n- " .. concat(self, ":\n- ")
  end
  function Oops:new(message)
    return setmetatable({message}, self)
  end
  function Oops:push(message)
    insert(self, 1, message)
  end
  oops = {}
  function oops.err(message)
    return Oops:new(message)
  end
  function oops.raise(message, status, ...)
    if status then return status, ... end
    local previous = ...
    local err
    if getmetatable(previous) == Oops then
      err = previous
    elseif previous == nil then
      err = setmetatable({}, Oops)
    else
      err = Oops:new(previous)
    end
    err:push(message)
    return status, err
  end
end

local M = stdnse.module("comm", stdnse.seeall)

local function timeouts(host, opts)
  local connect = opts.connect_timeout or opts.timeout or stdnse.get_timeout(host)
  local request = opts.request_timeout or opts.timeout or 6000
  return connect, connect + request
end

-- A connected socket, or a false status and the error.
local function connect(host, port, opts)
  local proto = opts.proto or (type(port) == "table" and port.protocol) or "tcp"
  local connect_ms, answer_ms = timeouts(host, opts)
  local sock = nmap.new_socket(proto == "udp" and "udp" or "tcp")
  sock:set_timeout(connect_ms)
  local status, err = sock:connect(host, port, proto)
  if not status then
    return oops.raise("Could not connect", status, err)
  end
  sock:set_timeout(answer_ms)
  return sock
end

local PLAIN = {}

-- One read as the options ask; true and the data, or a false status and the error.
local function read(sock, opts)
  local status, data
  if opts.lines then
    status, data = sock:receive_lines(opts.lines)
  elseif opts.bytes then
    status, data = sock:receive_bytes(opts.bytes)
  else
    status, data = sock:receive()
  end
  if status then return true, data end
  return oops.raise("receive failed", status, data)
end

--- Connect, optionally read first (<code>recv_before</code>, as the options ask), send
-- <code>data</code> (when not empty) and read the answer (one read).
-- @return The connected socket, or false (no connection) or nil (no answer).
-- @return The answer; with no data, what was read first (or nil); on failure the error.
-- @return With <code>recv_before</code>, what was read first (or the error reading it).
local function opencon(host, port, data, opts)
  opts = opts or {}
  local sock, err = connect(host, port, opts)
  if not sock then
    local _, failure = oops.raise("Failed to connect", sock, err)
    return false, failure
  end
  local early, early_failed
  if opts.recv_before then
    local status, got = read(sock, opts)
    if status then
      early = got
    else
      early_failed = true
      early = select(2, oops.raise("read failed", status, got))
    end
  end
  if data and #data > 0 then
    sock:send(data)
    -- The answer is one plain read: bytes and lines apply to the first read only.
    local status, response = read(sock, PLAIN)
    if not status then
      sock:close()
      return nil, response, early
    end
    return sock, response, early
  end
  if opts.recv_before then
    if early_failed then
      sock:close()
      return nil, early, early
    end
    return sock, early, early
  end
  return sock, nil, nil
end
M.opencon = opencon

-- Whether SSL is the better first guess for the port (its version information or a usual
-- SSL port or service, whatever its state).
local function ssl_first(port)
  if type(port) ~= "table" then return false end
  local view = {number = port.number, protocol = "tcp", state = "open",
                service = port.service, version = port.version}
  return shortport.ssl(nil, view)
end

--- Open a connection as opencon does, trying plain TCP and SSL (SSL first for likely SSL
-- ports); UDP ports are tried with UDP only. Sets <code>opts.proto</code> to each protocol
-- tried.
-- @return The socket, or false/nil when nothing worked.
-- @return The answer, or the error of the last attempt.
-- @return The protocol that worked: "tcp", "ssl", "udp", or "none".
-- @return What was read first (<code>recv_before</code>).
local function tryssl(host, port, data, opts)
  opts = opts or {}
  local protos
  if type(port) == "table" and port.protocol == "udp" then
    protos = {"udp"}
  elseif ssl_first(port) then
    protos = {"ssl", "tcp"}
  else
    protos = {"tcp", "ssl"}
  end
  local sock, response, early, proto
  for _, try in ipairs(protos) do
    proto = try
    opts.proto = try
    sock, response, early = opencon(host, port, data, opts)
    if sock then return sock, response, try, early end
  end
  local status, err = oops.raise(proto .. " failed", sock, response)
  return status, err, "none", nil
end
M.tryssl = tryssl

--- What a service says on connection (plain TCP or SSL).
-- @return true and the banner, or false and the error.
local function get_banner(host, port, opts)
  opts = opts or {}
  opts.recv_before = true
  local sock, response = tryssl(host, port, "", opts)
  if sock then
    sock:close()
    return true, response
  end
  local _, err = oops.raise("tryssl failed", sock, response)
  return false, err
end
M.get_banner = get_banner

--- Connect, send <code>data</code>, read the answer and close.
-- @return true and the answer, or a false status (nil or false) and the error.
local function exchange(host, port, data, opts)
  opts = opts or {}
  local sock, err = connect(host, port, opts)
  if not sock then
    return oops.raise("Failed to connect", sock, err)
  end
  sock:send(data)
  local status, response = read(sock, opts)
  sock:close()
  if not status then
    return oops.raise("Failed to read", status, response)
  end
  return true, response
end
M.exchange = exchange

return M
