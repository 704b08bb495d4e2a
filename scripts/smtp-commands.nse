local shortport = require "shortport"
local smtp = require "smtp"
local stdnse = require "stdnse"
local table = require "table"

description = [[
Lists the extensions an SMTP server announces in its answer to EHLO, and the
text of its answer to HELP.

The EHLO lines (the greeting line first) are joined with commas; the HELP text
follows on a second line. Reply codes are cut and runs of white space become one
space. When the server refuses EHLO, its answer is the result.
]]

---
-- @usage
-- nmap -p 25,465,587 --script smtp-commands <target>
-- nmap -p 25 --script smtp-commands --script-args smtp-commands.domain=example.com <target>
--
-- @output
-- PORT   STATE SERVICE
-- 25/tcp open  smtp
-- | smtp-commands: mail.example.com Hello nmap.scanme.org, PIPELINING, SIZE 10240000, VRFY, STARTTLS, 8BITMIME
-- |_ 2.0.0 Topics: 2.0.0 HELO EHLO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY 2.0.0 End of HELP info
--
-- @xmloutput
-- mail.example.com Hello nmap.scanme.org, PIPELINING, SIZE 10240000, VRFY, STARTTLS, 8BITMIME
--  2.0.0 Topics: 2.0.0 HELO EHLO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY 2.0.0 End of HELP info
--
-- @args smtp-commands.domain The domain to send with EHLO (default: the
--       <code>smtp.domain</code> argument, else as <code>smtp.get_domain</code> chooses).

author = "nsecluster"
license = "Same as nsecluster"
categories = {"default", "discovery", "safe"}

portrule = shortport.port_or_service({25, 465, 587}, {"smtp", "smtps", "submission"})

-- The lines of a reply without their "<code>-" or "<code> " prefix.
local function reply_lines(response, code)
  local lines = {}
  for line in response:gmatch("[^\r\n]+") do
    if line:sub(1, 3) == code and (line:sub(4, 4) == "-" or line:sub(4, 4) == " ") then
      line = line:sub(5)
    end
    lines[#lines + 1] = line
  end
  return lines
end

local function squeeze(text)
  return (text:gsub("%s+", " "))
end

action = function(host, port)
  local domain = stdnse.get_script_args(SCRIPT_NAME .. ".domain") or smtp.get_domain(host)
  local socket, banner = smtp.connect(host, port, {ssl = true, timeout = 10000,
                                                   recv_before = true, lines = 1})
  if not socket then
    stdnse.debug1("Couldn't connect: %s", tostring(banner))
    return nil
  end
  local status, response = smtp.ehlo(socket, domain)
  if not status then
    return response
  end
  local result = squeeze(table.concat(reply_lines(response, "250"), ", "))
  local ok, help = smtp.help(socket)
  if ok then
    result = result .. "\n" .. squeeze(" " .. table.concat(reply_lines(help, "214"), " "))
    smtp.quit(socket)
  end
  return result
end
