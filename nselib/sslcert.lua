---
-- Getting a service's SSL certificate, directly or after STARTTLS, cached per host and port.
--
-- <code>getCertificate(host, port)</code> returns the certificate object of
-- <code>socket:get_ssl_certificate()</code>. It is kept in
-- <code>host.registry["ssl-cert"][port.number]</code>, so later calls (from any script) for
-- the same port do not connect again; failures are not cached.
--
-- For services that start TLS inside their own protocol, <code>StartTLS</code> holds, per
-- protocol, <code>&lt;proto&gt;_prepare_tls_without_reconnect(host, port)</code> (returns
-- <code>true</code> and a plain socket on which the TLS handshake may start) and
-- <code>&lt;proto&gt;_prepare_tls(host, port)</code> (the same, then
-- <code>reconnect_ssl</code>: returns <code>true</code> and a TLS socket). Both return
-- <code>false</code> and an error message on failure. Protocols: ftp, smtp, lmtp, pop3, imap,
-- nntp, ldap, postgres, mysql and xmpp; vnc and tds are listed but not supported (their TLS
-- is wrapped inside the protocol), so their functions fail and a direct TLS connection is
-- tried instead.
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values
-- are those scripts written for Nmap expect.
--
-- @usage
-- local ok, cert = sslcert.getCertificate(host, port)
-- if ok then return cert.subject.commonName end
--
-- @class module
-- @name sslcert

local comm = require "comm"
local ftp = require "ftp"
local nmap = require "nmap"
local smtp = require "smtp"

local ipairs, pcall, setmetatable, tostring, type = ipairs, pcall, setmetatable, tostring, type
local byte, char, find, format, match, rep, sub = string.byte, string.char, string.find,
      string.format, string.match, string.rep, string.sub
local pack, unpack = string.pack, string.unpack

local _ENV = {}
local M = _ENV

--- Parse a DER certificate (the same as <code>nmap.socket.parse_ssl_certificate</code>).
parse_ssl_certificate = nmap.socket.parse_ssl_certificate

local TLS_TIMEOUT_MS = 10000

-- ---------------------------------------------------------------------------------------------
-- Line reading over a socket, starting with data already read.

local function line_reader(socket, early)
  local pending = early or ""
  return function()
    local guard = 0
    while true do
      local first, last = find(pending, "\r?\n")
      if first then
        local line = sub(pending, 1, first - 1)
        pending = sub(pending, last + 1)
        return line
      end
      guard = guard + 1
      if guard > 4096 then return nil, "line too long" end
      local status, data = socket:receive()
      if not status then return nil, data end
      pending = pending .. data
    end
  end
end

-- A plain connection that has read what the server says first; the socket and a line reader.
local function open_with_banner(host, port)
  local socket, early = comm.opencon(host, port, nil, {recv_before = true, lines = 1})
  if not socket then return nil, tostring(early) end
  return socket, line_reader(socket, type(early) == "string" and early or "")
end

local function fail(socket, message)
  if socket then socket:close() end
  return false, message
end

-- ---------------------------------------------------------------------------------------------
-- STARTTLS, protocol by protocol: each returns true and the plain socket ready for the TLS
-- handshake, or false and an error message.

local prepare = {}

function prepare.ftp(host, port)
  local socket, code, message, buffer = ftp.connect(host, port, {})
  if not socket then return false, "Failed to connect to FTP server: " .. tostring(code) end
  if code ~= 220 then
    return fail(socket, "FTP protocol error: " .. tostring(code or message))
  end
  local accepted, reply = ftp.starttls(socket, buffer)
  if not accepted then
    return fail(socket, "FTP AUTH TLS error: " .. tostring(reply))
  end
  return true, socket
end

local function smtp_like(greeting)
  return function(host, port)
    local socket, response = smtp.connect(host, port, {recv_before = true, lines = 1})
    if not socket then return false, "Failed to connect to SMTP server: " .. tostring(response) end
    local status
    if greeting == "EHLO" then
      status, response = smtp.ehlo(socket, smtp.get_domain(host))
    else
      status, response = smtp.query(socket, greeting, smtp.get_domain(host))
      if status and not match(response, "^250") then status = false end
    end
    if not status then
      if status == nil then socket:close() end
      return false, "Failed to " .. greeting .. ": " .. tostring(response)
    end
    status, response = smtp.query(socket, "STARTTLS")
    if not status or not match(response, "^220") then
      return fail(socket, "Failed to STARTTLS: " .. tostring(response))
    end
    return true, socket
  end
end

prepare.smtp = smtp_like("EHLO")
prepare.lmtp = smtp_like("LHLO")

function prepare.pop3(host, port)
  local socket, read = open_with_banner(host, port)
  if not socket then return false, "Failed to connect to POP3 server: " .. read end
  local banner, err = read()
  if not banner or not match(banner, "^%+OK") then
    return fail(socket, "POP3 server did not say hello: " .. tostring(banner or err))
  end
  socket:send("STLS\r\n")
  local reply
  reply, err = read()
  if not reply or not match(reply, "^%+OK") then
    return fail(socket, "POP3 STLS refused: " .. tostring(reply or err))
  end
  return true, socket
end

function prepare.imap(host, port)
  local socket, read = open_with_banner(host, port)
  if not socket then return false, "Failed to connect to IMAP server: " .. read end
  local banner, err = read()
  if not banner or not match(banner, "^%* OK") then
    return fail(socket, "IMAP server did not say hello: " .. tostring(banner or err))
  end
  -- Read untagged lines up to the tagged answer.
  local function tagged(tag)
    for _ = 1, 1000 do
      local line, read_err = read()
      if not line then return nil, read_err end
      if sub(line, 1, #tag + 1) == tag .. " " then return line end
    end
    return nil, "too many lines"
  end
  socket:send("A001 CAPABILITY\r\n")
  local answer
  answer, err = tagged("A001")
  if not answer then return fail(socket, "IMAP CAPABILITY failed: " .. tostring(err)) end
  socket:send("A002 STARTTLS\r\n")
  answer, err = tagged("A002")
  if not answer or not match(answer, "^A002 OK") then
    return fail(socket, "IMAP STARTTLS refused: " .. tostring(answer or err))
  end
  return true, socket
end

function prepare.nntp(host, port)
  local socket, read = open_with_banner(host, port)
  if not socket then return false, "Failed to connect to NNTP server: " .. read end
  local banner, err = read()
  if not banner or not match(banner, "^20[01]") then
    return fail(socket, "NNTP server did not say hello: " .. tostring(banner or err))
  end
  socket:send("STARTTLS\r\n")
  local reply
  reply, err = read()
  if not reply or not match(reply, "^382") then
    return fail(socket, "NNTP STARTTLS refused: " .. tostring(reply or err))
  end
  return true, socket
end

local function plain_socket(host, port)
  local socket = nmap.new_socket()
  socket:set_timeout(TLS_TIMEOUT_MS)
  local status, err = socket:connect(host, port, "tcp")
  if not status then return nil, err end
  return socket
end

-- BER length of <code>n</code> bytes (short form is enough for these messages).
local function ber(tag, content)
  return char(tag, #content) .. content
end

function prepare.ldap(host, port)
  local socket, err = plain_socket(host, port)
  if not socket then return false, "Failed to connect to LDAP server: " .. tostring(err) end
  local oid = "1.3.6.1.4.1.1466.20037"
  local request = ber(0x30, ber(0x02, "\1") .. ber(0x77, ber(0x80, oid)))
  socket:send(request)
  local status, data = socket:receive()
  if not status then return fail(socket, "LDAP M.StartTLS: no answer: " .. tostring(data)) end
  -- ExtendedResponse (application 24) whose resultCode (ENUMERATED) is 0.
  local at = find(data, "\x78", 1, true)
  local result = at and match(data, "^\x0a\x01(.)", at + 2)
  if result ~= "\0" then
    return fail(socket, "LDAP M.StartTLS refused")
  end
  return true, socket
end

function prepare.postgres(host, port)
  local socket, err = plain_socket(host, port)
  if not socket then return false, "Failed to connect to PostgreSQL server: " .. tostring(err) end
  socket:send(pack(">I4I4", 8, 80877103))
  local status, data = socket:receive_bytes(1)
  if not status or sub(data, 1, 1) ~= "S" then
    return fail(socket, "PostgreSQL server does not support SSL")
  end
  return true, socket
end

function prepare.mysql(host, port)
  local socket, err = plain_socket(host, port)
  if not socket then return false, "Failed to connect to MySQL server: " .. tostring(err) end
  local status, data = socket:receive_bytes(4)
  if not status then return fail(socket, "MySQL: no greeting") end
  local length = unpack("<I3", data)
  local guard = 0
  while #data < 4 + length and guard < 100 do
    guard = guard + 1
    local more_status, more = socket:receive()
    if not more_status then return fail(socket, "MySQL: short greeting") end
    data = data .. more
  end
  -- protocol version, server version (NUL-terminated), thread id, 8 bytes of salt, filler,
  -- then the lower capability flags.
  local version_end = find(data, "\0", 6, true)
  if byte(data, 5) ~= 10 or not version_end then return fail(socket, "MySQL: bad greeting") end
  local caps = unpack("<I2", data, version_end + 1 + 4 + 8 + 1)
  if caps & 0x0800 == 0 then return fail(socket, "MySQL server does not support SSL") end
  local flags = 0x0800 | 0x0200 | 0x8000 | 0x0001 | 0x0004  -- SSL, 4.1 protocol, secure conn
  local payload = pack("<I4I4B", flags, 16777216, 33) .. rep("\0", 23)
  socket:send(pack("<I3B", #payload, 1) .. payload)
  return true, socket
end

local function xmpp(namespace)
  return function(host, port)
    local socket, err = plain_socket(host, port)
    if not socket then return false, "Failed to connect to XMPP server: " .. tostring(err) end
    local name = type(host) == "table" and (host.targetname or host.name ~= "" and host.name or
                                            host.ip) or tostring(host)
    socket:send(format("<?xml version='1.0' ?><stream:stream xmlns:stream=" ..
                       "'http://etherx.jabber.org/streams' xmlns='%s' to='%s' version='1.0'>",
                       namespace, tostring(name)))
    local received = ""
    local guard = 0
    while not find(received, "</stream:features>", 1, true) and guard < 100 do
      guard = guard + 1
      local status, data = socket:receive()
      if not status then return fail(socket, "XMPP: no stream features") end
      received = received .. data
    end
    if not find(received, "starttls", 1, true) then
      return fail(socket, "XMPP server does not offer STARTTLS")
    end
    socket:send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    local status, data = socket:receive()
    if not status or not find(data, "<proceed", 1, true) then
      return fail(socket, "XMPP STARTTLS refused")
    end
    return true, socket
  end
end

prepare.xmpp = xmpp("jabber:client")
prepare.xmpp_server = xmpp("jabber:server")

local function unsupported(name)
  return function()
    return false, name .. " TLS inside the protocol is not supported"
  end
end
prepare.vnc = unsupported("VNC")
prepare.tds = unsupported("TDS")

--- The STARTTLS functions, by protocol.
StartTLS = {}

local PROTOCOLS = {"ftp", "smtp", "lmtp", "pop3", "imap", "nntp", "ldap", "postgres", "mysql",
                   "xmpp", "vnc", "tds"}

for _, name in ipairs(PROTOCOLS) do
  local without = function(host, port)
    local f = prepare[name]
    if name == "xmpp" and type(port) == "table" and port.number == 5269 then
      f = prepare.xmpp_server
    end
    return f(host, port)
  end
  M.StartTLS[name .. "_prepare_tls_without_reconnect"] = without
  M.StartTLS[name .. "_prepare_tls"] = function(host, port)
    local status, socket = without(host, port)
    if not status then
      return false, "Failed to connect to server: " .. tostring(socket)
    end
    local ok, err = socket:reconnect_ssl()
    if not ok then
      socket:close()
      return false, "Failed to reconnect SSL: " .. tostring(err)
    end
    return true, socket
  end
end

local BY_NUMBER = {[21] = "ftp", [25] = "smtp", [587] = "smtp", [110] = "pop3", [143] = "imap",
                   [389] = "ldap", [3306] = "mysql", [119] = "nntp", [5432] = "postgres",
                   [5900] = "vnc", [5222] = "xmpp", [5269] = "xmpp"}
local BY_SERVICE = {ftp = "ftp", smtp = "smtp", imap = "imap", pop3 = "pop3", ldap = "ldap",
                    postgresql = "postgres", mysql = "mysql", ["ms-sql-s"] = "tds",
                    vnc = "vnc", nntp = "nntp", lmtp = "lmtp", xmpp = "xmpp"}

local function protocol_of(port)
  if type(port) ~= "table" then return nil end
  return BY_NUMBER[port.number] or BY_SERVICE[port.service]
end

--- The STARTTLS function (<code>&lt;proto&gt;_prepare_tls</code>) for a port, by its number
-- or service name.
-- @param port The port table.
-- @return The function, or nil when the port is not a known STARTTLS service.
function isPortSupported(port)
  local name = protocol_of(port)
  return name and M.StartTLS[name .. "_prepare_tls"] or nil
end

--- The <code>&lt;proto&gt;_prepare_tls_without_reconnect</code> function for a port.
-- @param port The port table.
-- @return The function, or nil.
function getPrepareTLSWithoutReconnect(port)
  local name = protocol_of(port)
  return name and M.StartTLS[name .. "_prepare_tls_without_reconnect"] or nil
end

-- ---------------------------------------------------------------------------------------------
-- WrappedSocket: a socket seen through a wrapper (for protocols that carry TLS inside their own
-- messages, a wrapper would frame what is sent and unframe what is received; this one passes
-- the data as it is).

WrappedSocket = {}

--- Wrap a socket.
-- @param socket The socket.
-- @return The wrapper, with the socket methods below.
function WrappedSocket:new(socket, ...)
  local o = {socket = socket, args = {...}}
  setmetatable(o, self)
  self.__index = self
  return o
end

--- Send data, as the wrapped socket's <code>send</code>.
function WrappedSocket:send(data) return self.socket:send(data) end
--- Receive, as the wrapped socket's <code>receive</code>.
function WrappedSocket:receive() return self.socket:receive() end
--- Receive at least <code>n</code> bytes, as the wrapped socket's <code>receive_bytes</code>.
function WrappedSocket:receive_bytes(n) return self.socket:receive_bytes(n) end
--- Receive at least <code>n</code> lines, as the wrapped socket's <code>receive_lines</code>.
function WrappedSocket:receive_lines(n) return self.socket:receive_lines(n) end
--- Receive up to a delimiter, as the wrapped socket's <code>receive_buf</code>.
function WrappedSocket:receive_buf(delimiter, keeppattern)
  return self.socket:receive_buf(delimiter, keeppattern)
end
--- Set the timeout (milliseconds), as the wrapped socket's <code>set_timeout</code>.
function WrappedSocket:set_timeout(t) return self.socket:set_timeout(t) end
--- Close the wrapped socket.
function WrappedSocket:close() return self.socket:close() end

-- ---------------------------------------------------------------------------------------------
-- getCertificate

local function direct_tls(host, port)
  local socket = nmap.new_socket()
  socket:set_timeout(TLS_TIMEOUT_MS)
  local status = socket:connect(host, port, "ssl")
  if not status then
    socket:close()
    return nil
  end
  return socket
end

local function fetch(host, port)
  local socket
  local tunnel = type(port.version) == "table" and port.version.service_tunnel
  local starttls = tunnel ~= "ssl" and M.isPortSupported(port)
  if starttls then
    local status, s = starttls(host, port)
    if status then socket = s end
  end
  if not socket then socket = direct_tls(host, port) end
  if not socket then return nil end
  local ok, cert = pcall(socket.get_ssl_certificate, socket)
  socket:close()
  if ok then return cert end
end

--- The SSL certificate of a service, through STARTTLS when the port is a STARTTLS service
-- (unless its version information says it is SSL-tunnelled), else by a direct TLS connection.
-- Cached in <code>host.registry["ssl-cert"][port.number]</code>.
-- @param host The host table.
-- @param port The port table.
-- @return true and the certificate object, or false and <code>"No certificate found"</code>.
function getCertificate(host, port)
  local key = "sslcert-" .. tostring(type(host) == "table" and (host.ip or host.targetname)
                                     or host) .. "-" .. tostring(port.number)
  local mutex = nmap.mutex(key)
  mutex("lock")
  local registry = type(host) == "table" and host.registry
  local cache = registry and registry["ssl-cert"]
  if cache and cache[port.number] then
    mutex("done")
    return true, cache[port.number]
  end
  local cert = fetch(host, port)
  if cert and registry then
    registry["ssl-cert"] = registry["ssl-cert"] or {}
    registry["ssl-cert"][port.number] = cert
  end
  mutex("done")
  if not cert then return false, "No certificate found" end
  return true, cert
end

return _ENV
