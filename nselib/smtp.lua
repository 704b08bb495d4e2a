---
-- SMTP client functions: connecting, EHLO, the mail commands, STARTTLS and AUTH.
--
-- The command functions (<code>ehlo</code>, <code>mail</code>, <code>recipient</code>,
-- <code>datasend</code>, <code>reset</code>, <code>verify</code>, <code>help</code>,
-- <code>starttls</code>) send a command, read the reply and check its code with
-- <code>check_reply</code>. When the code is not a success code for that command they send
-- <code>QUIT</code>, close the socket and return <code>false</code> and a message
-- <code>"SMTP: &lt;command&gt; &lt;reply&gt;"</code>. When the reply cannot be read they return
-- <code>nil</code> and a message.
--
-- Written for nsecluster from the NSE documentation; the names, arguments and return values
-- are those scripts written for Nmap expect.
--
-- @usage
-- local socket, banner = smtp.connect(host, port, {ssl = true, recv_before = true})
-- local ok, response = smtp.ehlo(socket, smtp.get_domain(host))
-- local mechanisms = smtp.get_auth_mech(response)
-- local ok, err = smtp.login(socket, "user", "secret", "PLAIN")
-- smtp.quit(socket)
--
-- @args smtp.domain The domain to send in EHLO (see <code>get_domain</code>).
--
-- @class module
-- @name smtp

local base64 = require "base64"
local comm = require "comm"
local nmap = require "nmap"
local stdnse = require "stdnse"

local error, ipairs, pairs, pcall, require, tostring, type = error, ipairs, pairs, pcall,
      require, tostring, type
local byte, format, gmatch, match = string.byte, string.format, string.gmatch, string.match

local _ENV = {}
local M = _ENV

-- Success codes of each command, as check_reply knows them.
local SUCCESS = {
  EHLO = {[250] = true},
  MAIL = {[250] = true},
  RCPT = {[250] = true, [251] = true},
  DATA = {[250] = true, [354] = true},
  STARTTLS = {[220] = true},
  RSET = {[250] = true},
  VRFY = {[250] = true, [251] = true},
  EXPN = {[250] = true},
  HELP = {[211] = true, [214] = true},
  AUTH = {[334] = true},
}

local ERROR_MESSAGES = {
  EOF = "connection closed",
  TIMEOUT = "connection timeout",
  ERROR = "failed to receive data",
}

local DEFAULT_DOMAIN = "nmap.scanme.org"

--- Whether <code>reply</code> (the server's full answer) has a success code for
-- <code>cmd</code>. Only the code of the first line counts.
-- @param cmd The command name, upper case (<code>EHLO</code>, <code>MAIL</code>, ...).
-- @param reply The reply text.
-- @return true and the reply, or false and <code>"SMTP: &lt;cmd&gt; &lt;reply&gt;"</code>.
function check_reply(cmd, reply)
  local codes = SUCCESS[cmd]
  local code = type(reply) == "string" and match(reply, "^(%d%d%d)")
  if codes and code and codes[code + 0] then
    return true, reply
  end
  return false, format("SMTP: %s %s", tostring(cmd), tostring(reply))
end

-- Whether the text read so far ends with the last line of a reply ("NNN text").
local function reply_complete(text)
  local last
  for line in gmatch(text, "([^\n]*)\n") do last = line end
  if not last then return false end
  return match(last, "^%d%d%d[ \r]") ~= nil or match(last, "^%d%d%d$") ~= nil
end

--- Send a command and read the reply (the whole reply, however many lines it has). The
-- reply is not checked.
-- @param socket The socket.
-- @param cmd The command.
-- @param data Its argument, if any (sent after a space).
-- @param lines The number of lines to wait for at first (default 1).
-- @return true and the reply, or nil and an error message.
function query(socket, cmd, data, lines)
  local line = data and (cmd .. " " .. data) or cmd
  local status, err = socket:send(line .. "\r\n")
  if not status then
    return nil, format("SMTP %s: failed to send data: %s", line,
                       ERROR_MESSAGES[err] or tostring(err))
  end
  local response
  status, response = socket:receive_lines(lines or 1)
  if not status then
    return nil, format("SMTP %s: failed to receive data: %s", line,
                       ERROR_MESSAGES[response] or tostring(response))
  end
  -- A reply split across reads: keep reading up to its last line (bounded).
  local reads = 0
  while not reply_complete(response) and reads < 64 do
    reads = reads + 1
    local more_status, more = socket:receive_lines(1)
    if not more_status then break end
    response = response .. more
  end
  return true, response
end

-- Send, read and check; on a negative reply quit and close.
local function command(socket, cmd, data, name)
  local status, response = M.query(socket, cmd, data)
  if not status then return status, response end
  local ok, message = M.check_reply(name or cmd, response)
  if not ok then
    M.quit(socket)
    return false, message
  end
  return true, response
end

--- Connect to the SMTP server.
-- @param host The host table.
-- @param port The port table.
-- @param opts Options: <code>ssl</code> (try SSL as well as plain TCP), <code>recv_before</code>
--        (read the banner), and the <code>comm</code> options (<code>timeout</code>,
--        <code>lines</code>, ...).
-- @return The socket, or false (no connection) or nil (no banner) on failure.
-- @return The banner (with <code>recv_before</code>), or the error message.
function connect(host, port, opts)
  opts = opts or {}
  local socket, response
  if opts.ssl then
    socket, response = comm.tryssl(host, port, "", opts)
  else
    socket, response = comm.opencon(host, port, nil, opts)
  end
  if not socket then
    return socket, "unspecified error"
  end
  if type(response) ~= "string" then response = nil end
  return socket, response
end

--- Send <code>EHLO</code>.
-- @param socket The socket.
-- @param domain The domain to send.
-- @return true and the reply, or false/nil and an error message.
function ehlo(socket, domain)
  return command(socket, "EHLO", domain)
end

--- Send <code>HELO</code> (a success is a 250 reply).
-- @param socket The socket.
-- @param domain The domain to send.
-- @return true and the reply, or false/nil and an error message.
function helo(socket, domain)
  local status, response = M.query(socket, "HELO", domain)
  if not status then return status, response end
  if match(response, "^250") then return true, response end
  M.quit(socket)
  return false, format("SMTP: HELO %s", response)
end

--- Send <code>HELP</code>.
function help(socket)
  return command(socket, "HELP")
end

--- Send <code>MAIL FROM:&lt;address&gt;</code>.
-- @param socket The socket.
-- @param address The sender address.
-- @param esmtp_args Table of ESMTP parameters (<code>{SIZE = "1000"}</code>), sent as
--        <code>KEY=value</code>.
function mail(socket, address, esmtp_args)
  local line = "FROM:<" .. address .. ">"
  if type(esmtp_args) == "table" then
    for key, value in pairs(esmtp_args) do
      line = line .. " " .. tostring(key) .. "=" .. tostring(value)
    end
  end
  return command(socket, "MAIL", line)
end

--- Send <code>RCPT TO:&lt;address&gt;</code>.
function recipient(socket, address)
  return command(socket, "RCPT", "TO:<" .. address .. ">")
end

--- Send <code>DATA</code>, then the message and the terminating line with a single dot.
-- @param socket The socket.
-- @param data The message (sent as given: lines starting with a dot are not doubled).
function datasend(socket, data)
  local status, response = command(socket, "DATA")
  if not status then return status, response end
  status, response = M.query(socket, data .. "\r\n.")
  if not status then return status, response end
  local ok, message = M.check_reply("DATA", response)
  if not ok then
    M.quit(socket)
    return false, message
  end
  return true, response
end

--- Send <code>RSET</code>.
function reset(socket)
  return command(socket, "RSET")
end

--- Send <code>VRFY</code>.
-- @param socket The socket.
-- @param mail The name or address to verify.
function verify(socket, mail)
  return command(socket, "VRFY", mail)
end

--- Send <code>QUIT</code> and close the socket.
function quit(socket)
  socket:send("QUIT\r\n")
  socket:close()
end

--- Send <code>STARTTLS</code> and, when the server agrees, start TLS on the socket.
-- @return true and the reply, or false/nil and an error message.
function starttls(socket)
  local status, response = command(socket, "STARTTLS")
  if not status then return status, response end
  local ok, err = socket:reconnect_ssl()
  if not ok then
    socket:close()
    return false, "Failed to connect SSL: " .. tostring(err)
  end
  return true, response
end

--- The authentication mechanisms an EHLO reply offers (from its <code>250-AUTH</code> line).
-- @param response The EHLO reply.
-- @return An array of mechanism names, or nil.
function get_auth_mech(response)
  if type(response) ~= "string" then return nil end
  local line = match(response, "250%-AUTH ([^\r\n]*)")
  if not line then return nil end
  local mechanisms = {}
  for name in gmatch(line, "[^ ]+") do
    mechanisms[#mechanisms + 1] = name
  end
  return mechanisms
end

--- The domain to use in EHLO: the script argument <code>smtp.domain</code>, else the host's
-- target name, else its reverse DNS name, else <code>nmap.scanme.org</code>.
-- @param host The host table (may be nil).
-- @return The domain.
function get_domain(host)
  local given = stdnse.get_script_args("smtp.domain")
  if given then return given end
  if type(host) == "table" then
    if host.targetname then return host.targetname end
    if host.name and host.name ~= "" then return host.name end
  end
  return DEFAULT_DOMAIN
end

-- ---------------------------------------------------------------------------------------------
-- Authentication

local function hex(s)
  return (s:gsub(".", function(c) return format("%02x", byte(c)) end))
end

local function openssl_module()
  local ok, openssl = pcall(require, "openssl")
  if ok then return openssl end
end

local function hmac_md5(key, text)
  local openssl = openssl_module()
  if not openssl then return nil end
  return openssl.hmac("md5", key, text)
end

local function md5(text)
  local openssl = openssl_module()
  if not openssl then return nil end
  return openssl.md5(text)
end

-- The reply text after "334 ", decoded; nil unless the reply is a 334 challenge.
local function challenge(response)
  local text = match(response or "", "^334 ?([^\r\n]*)")
  if not text then return nil end
  local ok, decoded = pcall(base64.dec, text)
  if ok and type(decoded) == "string" then return decoded end
  return text  -- not base64: only the mechanisms that use the challenge text can tell
end

local function digest_md5_response(username, password, decoded)
  local fields = {}
  for key, value in gmatch(decoded, '([%w%-]+)="?([^",]*)"?') do
    fields[key:lower()] = value
  end
  local realm = fields.realm or ""
  local nonce = fields.nonce
  if not nonce then return nil end
  local cnonce = hex(nmap.get_random_bytes(8))
  local uri = "smtp/" .. realm
  local nc = "00000001"
  local qop = "auth"
  local a1 = md5(username .. ":" .. realm .. ":" .. password) .. ":" .. nonce .. ":" .. cnonce
  local a2 = "AUTHENTICATE:" .. uri
  local response = hex(md5(hex(md5(a1)) .. ":" .. nonce .. ":" .. nc .. ":" .. cnonce .. ":" ..
                           qop .. ":" .. hex(md5(a2))))
  return format('username="%s",realm="%s",nonce="%s",cnonce="%s",nc=%s,qop=%s,' ..
                'digest-uri="%s",response=%s', username, realm, nonce, cnonce, nc, qop, uri,
                response)
end

local MECHANISMS = {LOGIN = true, PLAIN = true, ["CRAM-MD5"] = true, ["DIGEST-MD5"] = true}

--- Authenticate with <code>AUTH</code>.
-- @param socket The socket.
-- @param username The username.
-- @param password The password.
-- @param mech The mechanism: <code>LOGIN</code>, <code>PLAIN</code>, <code>CRAM-MD5</code>
--        or <code>DIGEST-MD5</code>. Any other raises an error.
-- @return true and <code>"Login success"</code>, or false and the server's reply (or an
--         error message).
function login(socket, username, password, mech)
  if not MECHANISMS[mech] then
    error(format("Unsupported authentication mechanism (%s)", tostring(mech)))
  end
  local status, response = M.query(socket, "AUTH", mech)
  if not status then return false, response end
  local decoded = challenge(response)
  if not decoded then return false, "ERROR: Failed to retrieve challenge" end

  local answers
  if mech == "PLAIN" then
    answers = {base64.enc(username .. "\0" .. username .. "\0" .. password)}
  elseif mech == "LOGIN" then
    answers = {base64.enc(username), base64.enc(password)}
  elseif mech == "CRAM-MD5" then
    local digest = hmac_md5(password, decoded)
    if not digest then return false, "ERROR: CRAM-MD5 needs OpenSSL" end
    answers = {base64.enc(username .. " " .. hex(digest))}
  else  -- DIGEST-MD5
    if not md5("") then return false, "ERROR: DIGEST-MD5 needs OpenSSL" end
    local reply = digest_md5_response(username, password, decoded)
    if not reply then return false, "ERROR: Failed to parse challenge" end
    answers = {base64.enc(reply), ""}
  end

  for i, answer in ipairs(answers) do
    status, response = M.query(socket, answer)
    if not status then return false, response end
    local code = match(response, "^(%d%d%d)")
    if code == "235" then return true, "Login success" end
    if code ~= "334" or i == #answers then return false, response end
  end
  return false, response
end

return _ENV
