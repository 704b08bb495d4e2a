---
-- Ready-made portrules: match a port by number, service name, protocol and state, and the
-- usual tests for HTTP, SSL/TLS and SSH services.
--
-- Written for nsecluster from the NSEDoc of Nmap's shortport and from observing Nmap 7.93;
-- the names, arguments and results are those scripts written for Nmap expect.
--
-- Rules built here take <code>(host, port)</code>. By default they accept TCP ports in state
-- "open" or "open|filtered". Port lists may hold numbers and strings "n" or "n-m"; a bad
-- string raises an error when a port is checked against it.
--
-- @class module
-- @name shortport

local nmap = require "nmap"
local stdnse = require "stdnse"

local error, ipairs, require, tonumber, type = error, ipairs, require, tonumber, type
local byte, gmatch, match, pack, sub =
      string.byte, string.gmatch, string.match, string.pack, string.sub
local concat, insert = table.concat, table.insert

local M = stdnse.module("shortport", stdnse.seeall)

local DEFAULT_PROTOS = {"tcp"}
local DEFAULT_STATES = {"open", "open|filtered"}

local function as_list(value, default)
  if value == nil then return default end
  if type(value) ~= "table" then return {value} end
  return value
end

local function contains(list, value)
  for _, item in ipairs(list) do
    if item == value then return true end
  end
  return false
end

-- Whether port ``number`` is in ``list`` (numbers, and strings "n" or "n-m").
local function port_includes(list, number)
  for _, item in ipairs(list) do
    if item == number then return true end
    if type(item) == "string" then
      local first, last = match(item, "^(%d+)%-(%d+)$")
      if not first then
        first = match(item, "^(%d+)$")
        last = first
      end
      first, last = tonumber(first), tonumber(last)
      if not first then
        error("Incorrect port range specification.")
      end
      if first > last then
        error("Incorrect port range specification, the starting port should have a smaller "
              .. "value than the ending port.")
      end
      if first < 0 or last > 65535 then
        error("Port range number out of range (0-65535).")
      end
      if number >= first and number <= last then return true end
    end
  end
  return false
end

--- Whether a port is in the Exclude directive of nmap-service-probes.
-- @param port A port number.
-- @param proto "tcp" or "udp".
local function port_is_excluded(port, proto)
  return nmap.port_is_excluded(port, proto)
end
M.port_is_excluded = port_is_excluded

-- A rule: ``matches(port)`` and one of ``protos`` and one of ``states``.
local function rule(matches, protos, states)
  protos = as_list(protos, DEFAULT_PROTOS)
  states = as_list(states, DEFAULT_STATES)
  return function(host, port)
    return matches(port) and contains(protos, port.protocol) and contains(states, port.state)
  end
end

--- A rule matching ports by number.
-- @param ports A port number or list of port numbers and ranges ("n-m").
-- @param protos A protocol or list of them (default "tcp").
-- @param states A state or list of them (default "open" and "open|filtered").
local function portnumber(ports, protos, states)
  ports = as_list(ports, {})
  return rule(function(port) return port_includes(ports, port.number) end, protos, states)
end
M.portnumber = portnumber

--- A rule matching ports by service name (<code>port.service</code>, exact).
-- @param services A service name or list of them.
-- @param protos See portnumber.
-- @param states See portnumber.
local function service(services, protos, states)
  services = as_list(services, {})
  return rule(function(port) return contains(services, port.service) end, protos, states)
end
M.service = service

--- A rule matching a port number or a service name.
local function port_or_service(ports, services, protos, states)
  local by_number = portnumber(ports, protos, states)
  local by_name = service(services, protos, states)
  return function(host, port)
    return by_number(host, port) or by_name(host, port)
  end
end
M.port_or_service = port_or_service

--- Like port_or_service, for version-detection scripts: never a port in the Exclude
-- directive, and never when the version intensity is below <code>rarity</code>.
local function version_port_or_service(ports, services, protos, states, rarity)
  local rule = port_or_service(ports, services, protos, states)
  return function(host, port)
    if rarity and nmap.version_intensity() < rarity then return false end
    if port_is_excluded(port.number, port.protocol) then return false end
    return rule(host, port)
  end
end
M.version_port_or_service = version_port_or_service

--- A rule matching ports given as in Nmap's -p option: "22,80-90,T:8080,U:53". Entries
-- before any "T:" or "U:" are for TCP and UDP both. Reading stops quietly at text it does not
-- understand; numbers above 65535 are left out.
local function port_range(range)
  if type(range) ~= "string" or range == "" then
    error("Incorrect port range specification.")
  end
  local lists = {tcp = {}, udp = {}}
  local only
  local pos = 1
  while pos <= #range do
    local letter, after = match(range, "^([TU]):%s*()", pos)
    if letter then
      only = letter == "T" and "tcp" or "udp"
      pos = after
    else
      local spec, next_pos = match(range, "^(%d[%d%-]*)()", pos)
      if not spec then break end
      if sub(range, next_pos, next_pos) == ":" then
        error("Incorrect port range specification.")
      end
      local in_range = true
      for number in gmatch(spec, "%d+") do
        if tonumber(number) > 65535 then in_range = false end
      end
      if in_range then
        if only ~= "udp" then insert(lists.tcp, spec) end
        if only ~= "tcp" then insert(lists.udp, spec) end
      end
      pos = next_pos
      if sub(range, pos, pos) == "," then
        pos = pos + 1
      elseif pos <= #range then
        break
      end
    end
  end
  local tcp, udp = portnumber(lists.tcp, "tcp"), portnumber(lists.udp, "udp")
  return function(host, port)
    return tcp(host, port) or udp(host, port)
  end
end
M.port_range = port_range

M.LIKELY_HTTP_PORTS = {80, 443, 631, 7080, 8080, 8443, 8088, 5800, 3872, 8180, 8000}
M.LIKELY_HTTP_SERVICES = {"http", "https", "ipp", "http-alt", "https-alt", "vnc-http",
                          "oem-agent", "soap", "http-proxy", "caldav", "carddav", "webdav"}

local likely_http = port_or_service(M.LIKELY_HTTP_PORTS, M.LIKELY_HTTP_SERVICES)

--- A portrule for likely HTTP services (by port number or service name).
function M.http(host, port)
  return likely_http(host, port)
end

local LIKELY_SSL_PORTS = {261, 271, 324, 443, 465, 563, 585, 636, 853, 989, 990, 992, 993,
                          994, 995, 2221, 2252, 2376, 3269, 3389, 4433, 4911, 5061, 5986,
                          6679, 6697, 8443, 8883, 9001}
local LIKELY_SSL_SERVICES = {"ftps", "ftps-data", "https", "https-alt", "imaps", "ircs",
                             "ldapssl", "ms-wbt-server", "pop3s", "sip-tls", "smtps",
                             "telnets", "tor-orport"}

local likely_ssl = port_or_service(LIKELY_SSL_PORTS, LIKELY_SSL_SERVICES, {"tcp", "sctp"})

-- A TLS ClientHello (a handshake record) offering common suites; ``version`` is the
-- protocol version both in the record and in the hello.
local function client_hello(version, host)
  local suites = {0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc009, 0xc013, 0xc00a,
                  0xc014, 0x009c, 0x009d, 0x002f, 0x0035, 0x000a, 0x00ff}
  local suite_bytes = {}
  for i, suite in ipairs(suites) do suite_bytes[i] = pack(">I2", suite) end
  local function extension(kind, body) return pack(">I2s2", kind, body) end
  local extensions = {
    extension(0x000a, pack(">s2", pack(">I2I2I2I2", 0x001d, 0x0017, 0x0018, 0x0019))),
    extension(0x000b, pack(">s1", "\0")),
    extension(0x000d, pack(">s2", pack(">I2I2I2I2I2I2I2I2I2I2", 0x0403, 0x0503, 0x0603,
                                       0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601,
                                       0x0201))),
  }
  local name = type(host) == "table" and host.targetname or nil
  if type(name) == "string" and name ~= "" and not match(name, "^[%d.]+$")
     and not match(name, ":") then
    insert(extensions, 1, extension(0x0000, pack(">s2", pack(">Bs2", 0, name))))
  end
  local random = nmap.get_random_bytes(32)
  local body = pack(">I2", version) .. random .. "\0" .. pack(">s2", concat(suite_bytes))
               .. "\1\0" .. pack(">s2", concat(extensions))
  local handshake = "\1" .. sub(pack(">I4", #body), 2) .. body
  return "\22" .. pack(">I2s2", version, handshake)
end

-- What a peer's answer to a ClientHello says: true (TLS: a ServerHello or an alert), false
-- (not TLS at all) or nil (no answer, or nothing to tell).
local function classify(response)
  local kind, major = byte(response, 1, 2)
  if major ~= 3 or kind < 20 or kind > 24 then return false end
  if kind == 21 then return true end
  if kind == 22 and byte(response, 6) == 2 then return true end
  return nil
end

-- Ask the port whether it speaks TLS: a ClientHello, then (no answer) an SSLv3 one.
local function probe_ssl(host, port)
  local comm = require "comm"
  local result
  for _, version in ipairs({0x0303, 0x0300}) do
    local sock, response = comm.opencon(host, port, client_hello(version, host),
                                        {proto = port.protocol})
    if sock then
      sock:close()
      result = classify(response)
    end
    if result ~= nil then return result end
  end
  return result
end

--- A portrule for likely SSL/TLS services: a port version detection found tunnelled, a usual
-- SSL port or service name, or (with a host table that has a registry, for a port whose
-- service is only a guess) a port that answers a TLS ClientHello like a TLS server. The
-- answer is kept in <code>host.registry.ssl</code>.
function M.ssl(host, port)
  if (port.version and port.version.service_tunnel == "ssl") or likely_ssl(host, port) then
    return true
  end
  if not host then return false end
  if port.version and port.version.name_confidence <= 3 and host.registry then
    local known = host.registry.ssl or {}
    host.registry.ssl = known
    local key = port.number .. port.protocol
    if known[key] == nil then
      local result = probe_ssl(host, port)
      known[key] = result or false
      return result
    end
    return known[key]
  end
  return false
end

local likely_ssh = port_or_service({22, 830, 2222, 2382, 22222, 55554}, {"ssh", "netconf-ssh"})

--- A portrule for likely SSH services (by port number or service name).
function M.ssh(host, port)
  return likely_ssh(host, port)
end

return M
