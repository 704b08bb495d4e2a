local nmap = require "nmap"
local shortport = require "shortport"
local stdnse = require "stdnse"
local string = require "string"

description = [[
Reads the first line a TCP service says, as the banner script does, but opens only one
connection at a time across the whole scan: every host and port waits its turn. Use it for
fragile services or links that must never see parallel connections (an embedded device, a
serial-port server, a licence server that counts sessions).

The threads of the script share one lock (<code>nmap.mutex</code>); each takes it before
connecting and gives it back once its connection is closed, so the waiting threads go
one after another in the order they asked. Other scripts are not held back.
]]

---
-- @usage
-- nmap -p 23,2001-2016 --script serial-banner 10.0.0.0/28
-- nmap -p 7000 --script serial-banner --script-args serial-banner.timeout=2s <targets>
--
-- @output
-- PORT     STATE SERVICE
-- 2001/tcp open  dc
-- |_serial-banner: Console server port 1 ready
--
-- @xmloutput
-- <script id="serial-banner" output="Console server port 1 ready"/>
--
-- @args serial-banner.timeout How long to wait for the connection and then for the
--       greeting, each, as a time such as <code>2s</code> or <code>500ms</code> (default
--       5s). The next port's turn comes when this one is done.
-- @args serial-banner.ports Only these TCP ports, written as for the <code>-p</code>
--       option (default: every open TCP port).

author = "nsecluster"
license = "Same as nsecluster"
categories = {"discovery", "safe"}

local DEFAULT_TIMEOUT_MS = 5000
local MAX_LINE = 200 -- characters of the line shown

-- The same object for every thread of the script, so they all share one mutex.
local LOCK_NAME = "nsecluster serial-banner: one connection at a time"

local wanted = stdnse.get_script_args(SCRIPT_NAME .. ".ports")
if wanted then
  portrule = shortport.port_range("T:" .. wanted:gsub("^[T:]*", ""))
else
  portrule = function(host, port)
    return port.protocol == "tcp"
  end
end

local function timeout_ms()
  local given = stdnse.get_script_args(SCRIPT_NAME .. ".timeout")
  local seconds = given and stdnse.parse_timespec(given)
  return seconds and seconds * 1000 or DEFAULT_TIMEOUT_MS
end

-- The first line of the greeting, or nil. The socket is closed before returning.
local function first_line(host, port)
  local sock = nmap.new_socket()
  sock:set_timeout(timeout_ms())
  local ok, greeting = sock:connect(host, port)
  if ok then
    ok, greeting = sock:receive()
  end
  sock:close()
  if not ok then
    return nil
  end
  local line = greeting:match("^[\r\n]*([^\r\n]*)")
  local first = line:find("%S")
  if not first then
    return nil
  end
  line = line:match("^.*%S", first):gsub("[^\32-\126]", function(c)
    return string.format("\\x%02X", c:byte())
  end)
  if #line > MAX_LINE then
    line = line:sub(1, MAX_LINE - 3) .. "..."
  end
  return line
end

action = function(host, port)
  local lock = nmap.mutex(LOCK_NAME)
  lock("lock")
  local ok, line = pcall(first_line, host, port)
  lock("done")
  if not ok then
    stdnse.debug1("%s", line)
    return nil
  end
  return line
end
