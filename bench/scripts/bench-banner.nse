description = [[
Benchmark script: connects to the port, reads what the service sends first, closes.
Uses only the nmap module so that Nmap and nsecluster run the same file.
]]
categories = {"safe"}

portrule = function(host, port)
  return port.protocol == "tcp" and port.state == "open"
end

action = function(host, port)
  local socket = nmap.new_socket()
  socket:set_timeout(5000)
  local ok, err = socket:connect(host, port)
  if not ok then
    return "connect failed: " .. tostring(err)
  end
  local got, data = socket:receive()
  socket:close()
  if not got then
    return "no banner: " .. tostring(data)
  end
  return (data:gsub("[\r\n]+$", ""))
end
