local nmap = require "nmap"
local stdnse = require "stdnse"
local string = require "string"
local table = require "table"

description = [[
Asks a directly connected host for its hardware address with one ARP request, sent as a raw
Ethernet frame (<code>nmap.new_dnet</code>), and reads the reply with a packet capture whose
BPF filter lets through only that host's ARP replies (<code>pcap_open</code>). It needs raw
packets: root or CAP_NET_RAW, or a privileged worker in a cluster.

Only IPv4 hosts on the same Ethernet segment are asked (the host table's
<code>directly_connected</code>, <code>interface</code> and <code>mac_addr_src</code> say
which); nothing is routed.
]]

---
-- @usage
-- nsecluster scan -sS -p 80 --script arp-neighbour 192.0.2.0/24
--
-- @output
-- Host script results:
-- |_arp-neighbour: 52:54:00:12:34:56
--
-- @xmloutput
-- <elem key="mac">52:54:00:12:34:56</elem>
--
-- @args arp-neighbour.timeout How long to wait for the reply (default 1s).

author = "nsecluster"
license = "Same as nsecluster"
categories = {"discovery", "safe"}

hostrule = function(host)
  return host.directly_connected == true and host.interface ~= nil
    and host.mac_addr_src ~= nil and host.bin_ip ~= nil and #host.bin_ip == 4
    and host.bin_ip_src ~= nil and #host.bin_ip_src == 4
end

local ETHERTYPE_ARP = 0x0806

local function arp_request(host)
  local broadcast = string.rep("\255", 6)
  local ethernet = broadcast .. host.mac_addr_src .. string.pack(">I2", ETHERTYPE_ARP)
  local arp = string.pack(">I2I2BBI2", 1, 0x0800, 6, 4, 1)  -- who-has, Ethernet/IPv4
    .. host.mac_addr_src .. host.bin_ip_src .. string.rep("\0", 6) .. host.bin_ip
  return ethernet .. arp
end

action = function(host)
  local timeout = stdnse.parse_timespec(stdnse.get_script_args(SCRIPT_NAME .. ".timeout"))
  timeout = timeout and math.floor(timeout * 1000) or 1000
  local target = string.unpack(">I4", host.bin_ip)
  local capture = nmap.new_socket()
  capture:set_timeout(timeout)
  -- ARP replies (opcode 2) whose sender address is the target's.
  capture:pcap_open(host.interface, 128, false,
                    ("arp and arp[6:2] == 2 and arp[14:4] == %d"):format(target))
  local dnet = nmap.new_dnet()
  dnet:ethernet_open(host.interface)
  dnet:ethernet_send(arp_request(host))
  dnet:ethernet_close()
  local status, _, _, l3 = capture:pcap_receive()
  capture:close()
  if not status or #l3 < 14 then
    return nil
  end
  local result = stdnse.output_table()
  local octets = {}
  for i = 9, 14 do octets[#octets + 1] = ("%02x"):format(l3:byte(i)) end
  result.mac = table.concat(octets, ":")
  return result, result.mac
end
