local ipOps = require "ipOps"
local math = require "math"
local nmap = require "nmap"
local packet = require "packet"
local stdnse = require "stdnse"
local string = require "string"

description = [[
Classifies how the target generates IP IDs, the way Nmap's OS detection names the classes,
to find hosts suitable as the zombie of an idle scan (<code>-sI</code>), which needs an
incremental, host-wide IP ID. Six TCP SYN probes go to one port of the target, sent as raw
IP packets (<code>nmap.new_dnet</code>); the SYN-ACK or RST answers are read with a packet
capture, and the IP IDs they carry are classified: All zeros, Constant, Incremental!, Broken
incremental! (incremental in the wrong byte order), Random Positive Increments, Randomized or
Unknown (fewer than two answers, or no class fits).

The port is the <code>probeport</code> argument, else the first open TCP port of the port
scan, else the first closed one; without any, the script does not run. It needs raw packets
(root or CAP_NET_RAW, or a privileged worker in a cluster) and an IPv4 target.
]]

---
-- @usage
-- nsecluster scan -sS -p 22,80 --script ipidseq 192.0.2.0/24
-- nsecluster scan -sS --script ipidseq --script-args probeport=80 192.0.2.7
--
-- @args probeport The TCP port to send the probes to (also as
--       <code>ipidseq.probeport</code>).
--
-- @output
-- Host script results:
-- |_ipidseq: Incremental!
--
-- With debugging (<code>-d</code>) the port used is named:
-- |_ipidseq: All zeros [used port 80]

author = "nsecluster"
license = "Same as nsecluster"
categories = {"safe", "discovery"}

local PROBES = 6

-- The port to probe: the script argument, else an open TCP port, else a closed one.
local function probe_port(host)
  local given = stdnse.get_script_args(SCRIPT_NAME .. ".probeport", "probeport")
  if given then
    return tonumber(given)
  end
  for _, state in ipairs({"open", "closed"}) do
    local port = nmap.get_ports(host, nil, "tcp", state)
    if port then
      return port.number
    end
  end
  return nil
end

hostrule = function(host)
  if not nmap.is_privileged() then
    -- Said once per scan (each host's rule runs in its own environment: the registry).
    nmap.registry[SCRIPT_NAME] = nmap.registry[SCRIPT_NAME] or {}
    if not nmap.registry[SCRIPT_NAME].told_unprivileged then
      stdnse.verbose1("not running for lack of privileges.")
      nmap.registry[SCRIPT_NAME].told_unprivileged = true
    end
    return false
  end
  return nmap.address_family() == "inet" and host.bin_ip ~= nil and #host.bin_ip == 4
    and host.bin_ip_src ~= nil and #host.bin_ip_src == 4 and host.interface ~= nil
    and probe_port(host) ~= nil
end

-- A TCP SYN from this host to the target's port, as a packet object whose source port,
-- sequence number and checksums each probe sets.
local function syn_template(host, port)
  local tcp = string.pack(">I2I2I4I4BBI2I2I2", 0, port, 0, 0, 5 << 4, 0x02, 1024, 0, 0)
  local ip = string.pack(">BBI2I2I2BBI2", 0x45, 0, 20 + #tcp, 0, 0, nmap.get_ttl(), 6, 0)
    .. host.bin_ip_src .. host.bin_ip
  return packet.Packet:new(ip .. tcp, #ip + #tcp)
end

-- The IP ID of the target's answer to the probe from source port `sport`, or nil when none
-- came within `timeout_ms`.
local function answer_id(capture, sport, seq, timeout_ms)
  local deadline = nmap.clock_ms() + timeout_ms
  while true do
    local left = deadline - nmap.clock_ms()
    if left <= 0 then
      return nil
    end
    capture:set_timeout(math.ceil(left))
    local status, _, _, l3 = capture:pcap_receive()
    if not status then
      return nil
    end
    local reply = packet.Packet:new(l3, #l3)
    if reply and reply.tcp_dport == sport and reply.tcp_ack == (seq + 1) & 0xffffffff then
      return reply.ip_id
    end
  end
end

-- The IP IDs of up to PROBES answers, one probe at a time; the first unanswered probe ends
-- the series.
local function collect_ids(host, port)
  local timeout_ms = 1000
  if host.times and host.times.timeout then
    timeout_ms = math.max(100, math.floor(host.times.timeout * 1000))
  end
  local capture = nmap.new_socket()
  -- Only the target's TCP answers from the probed port reach the script.
  local source = ipOps.str_to_ip(host.bin_ip_src)
  capture:pcap_open(host.interface, 104, false,
    ("tcp and src host %s and dst host %s and src port %d"):format(host.ip, source, port))
  local dnet = nmap.new_dnet()
  dnet:ip_open()
  local probe = syn_template(host, port)
  local ids = {}
  for _ = 1, PROBES do
    local sport, seq = math.random(1025, 65535), math.random(1, 0x7fffffff)
    probe:tcp_set_sport(sport)
    probe:tcp_set_seq(seq)
    probe:ip_set_id(math.random(1, 0xffff))
    probe:tcp_count_checksum(probe.ip_len)
    probe:ip_count_checksum()
    dnet:ip_send(probe.buf, host)
    local id = answer_id(capture, sport, seq, timeout_ms)
    if not id then
      break
    end
    ids[#ids + 1] = id
  end
  dnet:ip_close()
  capture:close()
  return ids
end

-- Nmap's IP ID classes, from the differences between consecutive IDs (modulo 2^16).
local function classify(ids)
  if #ids < 2 then
    return "Unknown"
  end
  -- One pass over the differences; the classes are then tried in Nmap's order.
  local all_zero = ids[1] == 0
  local randomized, positive = false, false
  local constant, broken, incremental = true, true, true
  for i = 2, #ids do
    local diff = (ids[i] - ids[i - 1]) % 0x10000
    if ids[i] ~= 0 then all_zero = false end
    if diff > 20000 then randomized = true end
    if diff > 1000 and (diff % 256 ~= 0 or diff >= 25600) then positive = true end
    if diff ~= 0 then constant = false end
    if diff % 256 ~= 0 or diff > 5120 then broken = false end
    if diff >= 10 then incremental = false end
  end
  if all_zero then
    return "All zeros"
  elseif randomized then
    return "Randomized"
  elseif positive then
    return "Random Positive Increments"
  elseif constant then
    return "Constant"
  elseif broken then
    return "Broken incremental!"
  elseif incremental then
    return "Incremental!"
  end
  return "Unknown"
end

action = function(host)
  local port = probe_port(host)
  local class = classify(collect_ids(host, port))
  if nmap.debugging() > 0 then
    class = ("%s [used port %d]"):format(class, port)
  end
  return class
end
