local comm = require "comm"
local nmap = require "nmap"
local shortport = require "shortport"
local stdnse = require "stdnse"
local string = require "string"

description = [[
Fills in the product of an HTTP port whose version is still unknown (no version
detection, or no match) from what the web server calls itself in the <code>Server</code>
header of its answers.

Two plain requests are sent, one for HTTP/1.0 without headers and one for HTTP/1.1 with a
<code>Host</code> header (over SSL when the port is an SSL port, or when the plain request
gets no answer); each different Server value found is listed, and the first one becomes
the service's product.
]]

---
-- @usage
-- nmap -sV --script http-server-header <target>
-- nmap -p 80,8080 --script http-server-header <target>
--
-- @output
-- PORT   STATE SERVICE
-- 80/tcp open  http
-- |_http-server-header: Apache/2.4.57 (Debian)
--
-- @xmloutput
-- <elem>Apache/2.4.57 (Debian)</elem>
--
-- @args (none) The probes are fixed; only ports whose product is still unknown are tried.

author = "nsecluster"
license = "Same as nsecluster"
categories = {"version"}

portrule = function(host, port)
  return shortport.http(host, port) and not (port.version and port.version.product)
end

-- The answer to one request on a connection of its own (plain TCP first, SSL first on
-- usual SSL ports; the other when the first gets nothing), or nil.
local function ask(host, port, request)
  local socket, answer = comm.tryssl(host, port, request, {})
  if not socket then
    return nil
  end
  socket:close()
  return answer
end

action = function(host, port)
  local requests = {
    "GET / HTTP/1.0\r\n\r\n",
    ("GET / HTTP/1.1\r\nHost: %s\r\n\r\n"):format(stdnse.get_hostname(host)),
  }
  local servers, seen = {}, {}
  local spoke_http = false
  for _, request in ipairs(requests) do
    local answer = ask(host, port, request)
    if not answer then
      break  -- no answer at all, either way: no use asking again
    end
    if string.match(answer, "^HTTP/1%.[01] %d%d%d") then
      spoke_http = true
      local server = string.match(answer, "\n[Ss][Ee][Rr][Vv][Ee][Rr]:[ \t]*(.-)\r?\n")
      if server and not seen[server] then
        seen[server] = true
        servers[#servers + 1] = server
      end
    end
  end
  if not spoke_http then
    return nil
  end

  if servers[1] then
    port.version.product = servers[1]  -- set_port_version makes unprintable bytes dots
  end
  nmap.set_port_version(host, port, "hardmatched")

  if #servers == 0 then
    return nil
  end
  if #servers == 1 then
    return servers, (servers[1] == "" and "<empty>" or servers[1])
  end
  return servers
end
