local ftp = require "ftp"
local nmap = require "nmap"
local shortport = require "shortport"
local stdnse = require "stdnse"
local string = require "string"
local table = require "table"

description = [[
Tries to log in to an FTP server as the anonymous user (user <code>anonymous</code>,
password <code>IEUser@</code>) and says whether it got in.

When the login succeeds, the script lists the server's starting directory over a
passive data connection (PASV) and marks each entry that anyone may write to
(a file or directory whose permission string shows write access for others) with
<code>[NSE: writeable]</code>.
]]

---
-- @usage
-- nmap -p 21 --script ftp-anon <target>
-- nmap -p 21 --script ftp-anon --script-args ftp-anon.maxlist=-1 <target>
--
-- @output
-- PORT   STATE SERVICE
-- 21/tcp open  ftp
-- | ftp-anon: Anonymous FTP login allowed (FTP code 230)
-- | -rw-r--r--   1 ftp      ftp            31 Mar 28  2001 .banner
-- | drwxrwxrwx   2 ftp      ftp          4096 Jul 19 18:48 incoming [NSE: writeable]
-- |_drwxr-xr-x   2 ftp      ftp          4096 Aug  5  2004 pub
--
-- @xmloutput
-- Anonymous FTP login allowed (FTP code 230)
-- -rw-r--r--   1 ftp      ftp            31 Mar 28  2001 .banner
-- drwxrwxrwx   2 ftp      ftp          4096 Jul 19 18:48 incoming [NSE: writeable]
-- drwxr-xr-x   2 ftp      ftp          4096 Aug  5  2004 pub
--
-- @args ftp-anon.maxlist The most directory entries to show (default 20, or no limit
--       when the verbosity is above zero). A negative number removes the limit;
--       <code>0</code> skips the listing.

author = "nsecluster"
license = "Same as nsecluster"
categories = {"default", "auth", "safe"}

portrule = shortport.port_or_service({21, 990}, {"ftp", "ftps"})

local USER, PASSWORD = "anonymous", "IEUser@"

-- The listing limit: a number, or nil for none.
local function max_entries()
  local given = tonumber(stdnse.get_script_args(SCRIPT_NAME .. ".maxlist"))
  if given == nil then
    if nmap.verbosity() == 0 then
      return 20
    end
    return nil
  end
  if given < 0 then
    return nil
  end
  return given
end

-- A listing line whose permission string lets others write ("drwxrwxrwx", "-rw-rw-rw-").
local function writeable(line)
  return line:match("^[d%-]%S%S%S%S%S%S%Sw.") ~= nil
end

-- The lines of the LIST reply, read from the data connection until it ends or an empty
-- line; stops early at the limit.
local function listing(socket, buffer, limit, lines)
  local data, err = ftp.pasv(socket, buffer)
  if not data then
    lines[#lines + 1] = "Can't get directory listing: " .. tostring(err)
    return
  end
  local sent = socket:send("LIST\r\n")
  if not sent then
    data:close()
    return
  end
  local count = 0
  while true do
    local ok, line = data:receive_buf("\r?\n", false)
    if not ok or line == "" then
      break
    end
    if writeable(line) then
      line = line .. " [NSE: writeable]"
    end
    lines[#lines + 1] = line
    count = count + 1
    if limit and count >= limit then
      lines[#lines + 1] = string.format(
        "Only %d shown. Use --script-args %s.maxlist=-1 to see all.", count, SCRIPT_NAME)
      break
    end
  end
  data:close()
end

action = function(host, port)
  local limit = max_entries()
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
  local status
  status, code, message = ftp.auth(socket, buffer, USER, PASSWORD)
  if not status then
    ftp.close(socket)
    if not code or code == 421 or code == 530 then
      stdnse.debug1("Anonymous login refused: %s %s", tostring(code), tostring(message))
      return nil
    end
    return string.format('got code %d "%s".', code, tostring(message))
  end
  local lines = {string.format("Anonymous FTP login allowed (FTP code %d)", code)}
  if limit ~= 0 then
    listing(socket, buffer, limit, lines)
  end
  ftp.close(socket)
  return table.concat(lines, "\n")
end
