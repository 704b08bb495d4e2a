---
-- FTP client functions: connecting and reading the banner, reading (multi-line) replies,
-- logging in, AUTH TLS and passive mode.
--
-- Replies are read through a <em>buffer</em>: a function that returns the next line the
-- server sent (without its line end), or nil and an error. <code>connect</code> returns one
-- for its socket; <code>stdnse.make_buffer(socket, "\r?\n")</code> makes one too.
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values
-- are those scripts written for Nmap expect.
--
-- @usage
-- local socket, code, message, buffer = ftp.connect(host, port)
-- if not socket then return nil end
-- local ok, code, message = ftp.auth(socket, buffer, "anonymous", "me@example.com")
-- local data = ftp.pasv(socket, buffer)
-- ftp.close(socket)
--
-- @class module
-- @name ftp

local comm = require "comm"
local nmap = require "nmap"
local stdnse = require "stdnse"

local tonumber, type = tonumber, type
local find, format, match = string.find, string.format, string.match

local _ENV = {}
local M = _ENV

local LINE_END = "\r?\n"
local DATA_TIMEOUT_MS = 10000

-- A buffer over <code>socket</code> (stdnse.make_buffer's) that first hands out the lines of
-- <code>early</code> (what was already read from it).
local function primed_buffer(socket, early)
  local primed = early ~= ""
  local source = {receive = function()
    if primed then
      primed = false
      return true, early
    end
    return socket:receive()
  end}
  return stdnse.make_buffer(source, LINE_END)
end

--- Read one reply (RFC 959, section 4.2): a line <code>NNN text</code>, or
-- <code>NNN-text</code> followed by lines up to one that starts with three digits and a
-- space. The lines of a multi-line reply are joined with newlines (the first and last without
-- their codes).
-- @param buffer The buffer function.
-- @return The reply code (a number), or nil.
-- @return The message, or the error (the buffer's, or <code>Unparseable response</code>).
function read_reply(buffer)
  local line, err = buffer()
  if not line then return nil, err end
  local code, sep, text = match(line, "^(%d%d%d)([ -])(.*)$")
  if not code then
    return nil, format("Unparseable response: %q", line)
  end
  if sep == "-" then
    local parts = {text}
    while true do
      line, err = buffer()
      if not line then return nil, err end
      local last = match(line, "^%d%d%d (.*)$")
      if last then
        parts[#parts + 1] = last
        break
      end
      parts[#parts + 1] = line
    end
    local joined = parts[1]
    for i = 2, #parts do joined = joined .. "\n" .. parts[i] end
    text = joined
  end
  return tonumber(code), text
end

--- Connect to the FTP server (plain TCP or SSL, as <code>comm.tryssl</code> finds) and read
-- its banner.
-- @param host The host table.
-- @param port The port table.
-- @param opts Connection options, as for <code>comm</code> (<code>timeout</code>,
--        <code>connect_timeout</code>, <code>request_timeout</code>, ...).
-- @return The socket, or false on failure.
-- @return The banner's reply code (nil when it does not parse), or an error message.
-- @return The banner's message.
-- @return The buffer to pass to <code>read_reply</code>.
function connect(host, port, opts)
  opts = opts or {}
  opts.recv_before = true
  local socket, _, _, early = comm.tryssl(host, port, "", opts)
  if not socket then
    return false, "unspecified error"
  end
  if type(early) ~= "string" then early = "" end
  local buffer = primed_buffer(socket, early)
  local code, message = M.read_reply(buffer)
  return socket, code, message, buffer
end

--- Close the command connection (sends <code>QUIT</code> first).
-- @param socket The socket.
function close(socket)
  socket:send("QUIT\r\n")
  socket:close()
end

--- Send <code>AUTH TLS</code>. The caller starts TLS on success
-- (<code>socket:reconnect_ssl()</code>).
-- @param socket The command socket.
-- @param buffer Its buffer.
-- @return true if the server accepted (code 234), else false.
-- @return The server's message, or the error.
function starttls(socket, buffer)
  local status, err = socket:send("AUTH TLS\r\n")
  if not status then return false, err end
  local code, message = M.read_reply(buffer)
  return code == 234, message
end

local function wants_tls(code, message)
  if code ~= 530 or type(message) ~= "string" then return false end
  local lower = message:lower()
  return find(lower, "tls", 1, true) ~= nil or find(lower, "ssl", 1, true) ~= nil
end

--- Log in with <code>USER</code>, <code>PASS</code> and, if asked for, <code>ACCT</code>.
-- When the server answers USER with a 530 reply that asks for TLS, AUTH TLS is negotiated
-- and the login tried again.
-- @param socket The command socket.
-- @param buffer Its buffer.
-- @param username The username.
-- @param password The password.
-- @param acct The account, if the server asks for one (default: the username).
-- @return true if logged in, else nil (or false when TLS was needed but failed).
-- @return The last reply code.
-- @return The last reply message (or the error).
function auth(socket, buffer, username, password, acct)
  local status, err = socket:send("USER " .. username .. "\r\n")
  if not status then return nil, nil, err end
  local code, message = M.read_reply(buffer)
  if wants_tls(code, message) then
    local accepted, tls_message = M.starttls(socket, buffer)
    if not accepted then return false, code, tls_message end
    local ok, tls_err = socket:reconnect_ssl()
    if not ok then return false, code, tls_err end
    status, err = socket:send("USER " .. username .. "\r\n")
    if not status then return nil, nil, err end
    code, message = M.read_reply(buffer)
  end
  if code == 331 then
    status, err = socket:send("PASS " .. password .. "\r\n")
    if not status then return nil, nil, err end
    code, message = M.read_reply(buffer)
  end
  if code == 332 then
    status, err = socket:send("ACCT " .. (acct or username) .. "\r\n")
    if not status then return nil, nil, err end
    code, message = M.read_reply(buffer)
  end
  if code and code >= 200 and code < 300 then
    return true, code, message
  end
  return nil, code, message
end

--- Enter passive mode (<code>PASV</code>) and connect to the data port the server names.
-- @param socket The command socket.
-- @param buffer Its buffer.
-- @return The connected data socket, or nil.
-- @return On failure, the error.
function pasv(socket, buffer)
  local status, err = socket:send("PASV\r\n")
  if not status then return nil, err end
  local code, message = M.read_reply(buffer)
  if code ~= 227 then
    if not code then return nil, message end
    return nil, format("PASV failed: %d %s", code, message)
  end
  local h1, h2, h3, h4, p1, p2 = match(message, "(%d+),(%d+),(%d+),(%d+),(%d+),(%d+)")
  if not h1 then
    return nil, format("Can't parse PASV response: %q", message)
  end
  local number = tonumber(p1) * 256 + tonumber(p2)
  -- Like most clients, connect to the address of the command connection rather than the
  -- one in the reply (which may be private, or a bounce target).
  local ok, _, _, remote = socket:get_info()
  local address = ok and remote or format("%s.%s.%s.%s", h1, h2, h3, h4)
  local data = nmap.new_socket()
  data:set_timeout(DATA_TIMEOUT_MS)
  status, err = data:connect(address, number, "tcp")
  if not status then return nil, err end
  return data
end

return _ENV
