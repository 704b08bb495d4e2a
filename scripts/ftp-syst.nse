local ftp = require "ftp"
local shortport = require "shortport"
local stdnse = require "stdnse"

description = [[
Asks an FTP server for its system type (SYST) and its status (STAT), without
logging in, and reports both answers.

The usual SYST answer "UNIX Type: L8" tells nothing and is cut from the start of
the reply (a reply with nothing else is left out), and the expected reply codes
(215 for SYST, 211 for STAT) are not shown; any other positive code is shown
before the text. A command the server refuses is left out.
]]

---
-- @usage
-- nmap -p 21 --script ftp-syst <target>
--
-- @output
-- PORT   STATE SERVICE
-- 21/tcp open  ftp
-- | ftp-syst:
-- |   SYST: Windows_NT
-- |   STAT:
-- | FTP server status:
-- |      Connected to 192.0.2.7
-- |      TYPE: ASCII
-- |_End of status
--
-- @xmloutput
-- <elem key="SYST">Windows_NT</elem>
-- <elem key="STAT">&#xa;FTP server status:&#xa;     Connected to 192.0.2.7&#xa;
-- TYPE: ASCII&#xa;End of status</elem>

author = "nsecluster"
license = "Same as nsecluster"
categories = {"default", "discovery", "safe"}

portrule = shortport.port_or_service({21, 990}, {"ftp", "ftps"})

-- Send one command; the reply's code and text, or nil when the connection failed.
local function ask(socket, buffer, command)
  if not socket:send(command .. "\r\n") then
    return nil
  end
  return ftp.read_reply(buffer)
end

local function positive(code)
  return code ~= nil and code < 300
end

action = function(host, port)
  local socket, code, message, buffer = ftp.connect(host, port, {request_timeout = 8000})
  if not socket then
    stdnse.debug1("Couldn't connect: %s", tostring(code))
    return nil
  end
  if not code or code >= 400 then
    stdnse.debug1("Unwelcome greeting: %s %s", tostring(code), tostring(message))
    ftp.close(socket)
    return nil
  end
  local out = stdnse.output_table()

  code, message = ask(socket, buffer, "SYST")
  if code == nil then
    ftp.close(socket)
    return nil
  end
  if positive(code) then
    local text = message
    if code == 215 then
      text = text:gsub("^UNIX Type: L8 *", "")
    else
      text = code .. " " .. text
    end
    if text ~= "" then
      out.SYST = text
    end
  end

  code, message = ask(socket, buffer, "STAT")
  if positive(code) then
    out.STAT = (code == 211 and "" or tostring(code)) .. "\n" .. message
  end
  ftp.close(socket)
  if out.SYST == nil and out.STAT == nil then
    return nil
  end
  return out
end
