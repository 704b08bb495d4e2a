local comm = require "comm"
local nmap = require "nmap"
local shortport = require "shortport"
local stdnse = require "stdnse"
local string = require "string"
local table = require "table"

description = [[
Connects to a TCP port and reports what the service says first, without sending
anything: the greeting of an FTP, SSH, SMTP or similar server. A service that only
speaks TLS is tried again over TLS, so its greeting is found too.

Only the first read counts. Whitespace around the greeting is dropped and bytes outside
printable ASCII are written as <code>\xHH</code>. The text is wrapped (63 characters on the
first line, 71 on the others) and cut to one line plus one more for each level of
verbosity (naming the script on the command line counts as one level); a greeting that
does not fit ends in <code>...</code>.
]]

---
-- @usage
-- nmap -p 21,22,25 --script banner <target>
-- nmap --script banner --script-args banner.ports=common,banner.timeout=2s <target>
--
-- @output
-- PORT   STATE SERVICE
-- 22/tcp open  ssh
-- |_banner: SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3
--
-- @xmloutput
-- <script id="banner" output="220 FTP version 1.0"/>
--
-- @args banner.timeout How long to wait for the service to speak, as a time such as
--       <code>2s</code> or <code>500ms</code> (default 5s). Connecting has the same
--       allowance again.
-- @args banner.ports Only grab greetings on these TCP ports, written as for the
--       <code>-p</code> option; <code>common</code> stands for the usual text-protocol
--       ports (daytime, qotd, FTP, SSH, telnet, SMTP, IRC and their TLS forms). Default:
--       every TCP port.

author = "nsecluster"
license = "Same as nsecluster"
categories = {"discovery", "safe"}

-- Ports whose services greet in plain text, for banner.ports=common.
local COMMON_PORTS = "13,17,21-23,25,129,194,587,990,992,994,6667,6697"

local DEFAULT_WAIT_MS = 5000
local FIRST_WIDTH, NEXT_WIDTH = 63, 71

local wanted = stdnse.get_script_args(SCRIPT_NAME .. ".ports")
if wanted then
  if wanted == "common" then
    wanted = COMMON_PORTS
  end
  -- The ports are TCP ports: whatever "T" and ":" start the text, it starts with "T:".
  portrule = shortport.port_range("T:" .. wanted:gsub("^[T:]*", ""))
else
  portrule = function(host, port)
    return port.protocol == "tcp"
  end
end

-- The wait, in milliseconds, from banner.timeout (the default when absent or unreadable).
local function wait_ms()
  local given = stdnse.get_script_args(SCRIPT_NAME .. ".timeout")
  local seconds = given and stdnse.parse_timespec(given)
  if not seconds then
    return DEFAULT_WAIT_MS
  end
  return seconds * 1000
end

-- Printable ASCII stays; any other byte becomes \xHH.
local function escape(text)
  return (text:gsub("[^\32-\126]", function(c)
    return string.format("\\x%02X", c:byte())
  end))
end

-- Cut the escaped text into lines (63 characters, then 71) and keep at most max_lines of
-- them; a text that does not fit ends its last line with "..." instead of the rest.
local function layout(text, max_lines)
  local capacity = FIRST_WIDTH + NEXT_WIDTH * (max_lines - 1)
  local pieces = {}
  local pos = 1
  if #text > capacity then
    for line = 1, max_lines do
      local width = line == 1 and FIRST_WIDTH or NEXT_WIDTH
      if line == max_lines then
        pieces[#pieces + 1] = text:sub(pos, pos + width - 4) .. "...\n"
      else
        pieces[#pieces + 1] = text:sub(pos, pos + width - 1) .. "\n"
      end
      pos = pos + width
    end
    return table.concat(pieces)
  end
  local line = 1
  while pos <= #text do
    local width = line == 1 and FIRST_WIDTH or NEXT_WIDTH
    local piece = text:sub(pos, pos + width - 1)
    if #piece == width then
      piece = piece .. "\n"
    end
    pieces[#pieces + 1] = piece
    pos = pos + width
    line = line + 1
  end
  return table.concat(pieces)
end

action = function(host, port)
  local ok, greeting = comm.get_banner(host, port, {timeout = wait_ms()})
  if not ok or type(greeting) ~= "string" then
    return nil
  end
  -- Whitespace off both ends (found in linear time, whatever the greeting holds).
  local first = greeting:find("%S")
  if not first then
    return nil
  end
  greeting = greeting:match("^.*%S", first)
  return layout(escape(greeting), 1 + nmap.verbosity())
end
