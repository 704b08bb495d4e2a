"""dnet sends for real: two network namespaces made here, joined by a veth pair; a script
in one sends an Ethernet frame and an IP packet, and a capture in the other receives them
byte for byte. Nothing leaves the namespaces."""
from __future__ import annotations

import struct
import subprocess
import sys

from conftest import Netns, run_nsecluster

MARKER = b"NSECLUSTER-DNET"
CAPTURE = r"""
import socket, sys, time
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
sock.bind(("vB", 0))
sock.settimeout(0.2)
print("ready", flush=True)
wanted, found, deadline = int(sys.argv[1]), 0, time.monotonic() + 20
while found < wanted and time.monotonic() < deadline:
    try:
        frame, info = sock.recvfrom(65535)
    except socket.timeout:
        continue
    if info[2] != socket.PACKET_OUTGOING and b"NSECLUSTER-DNET" in frame:
        print(frame.hex(), flush=True)
        found += 1
"""


def checksum(header: bytes) -> int:
    total = sum(struct.unpack("!%dH" % (len(header) // 2), header))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ipv4_packet(payload: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0x1234, 0, 64, 253, 0,
                         bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def mac_of(space: Netns, device: str) -> bytes:
    return bytes.fromhex(space.run("cat", f"/sys/class/net/{device}/address").stdout.strip()
                         .replace(":", ""))


def lua_bytes(data: bytes) -> str:
    return '"' + "".join(f"\\x{b:02x}" for b in data) + '"'


def dnet_script(tmp_path, frame: bytes, packet: bytes):
    path = tmp_path / "dnet-send.nse"
    path.write_text(f"""
local nmap = require "nmap"
description = "Sends one Ethernet frame and one IP packet with dnet."
categories = {{"safe"}}
prerule = function() return true end
action = function()
  local dnet = nmap.new_dnet()
  local out = {{}}
  local ok, err = pcall(dnet.ethernet_open, dnet, "vA")
  if not ok then return "open: " .. err end
  out[#out + 1] = "sent " .. select("#", dnet:ethernet_send({lua_bytes(frame)}))
  dnet:ethernet_close()
  dnet:ip_open()
  out[#out + 1] = "ip " .. tostring(dnet:ip_send({lua_bytes(packet)}, "192.0.2.2"))
  out[#out + 1] = "closed " .. tostring(dnet:ip_close())
  return table.concat(out, ", ")
end
""")
    return path


def test_a_frame_and_a_packet_arrive_in_the_far_namespace_byte_for_byte(veth_pair, tmp_path):
    a, b = veth_pair
    frame = (mac_of(b, "vB") + mac_of(a, "vA") + b"\x88\xb5" + MARKER + bytes(range(256)))
    packet = ipv4_packet(MARKER + b" over IP")
    capture = b.popen(sys.executable, "-c", CAPTURE, "2", stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
    try:
        assert capture.stdout.readline().strip() == "ready"
        done = run_nsecluster("scan", "-n", "-Pn", "-p", "1", "127.0.0.1", "--script",
                              dnet_script(tmp_path, frame, packet), netns=a.name)
        assert done.returncode == 0, done.stderr
        assert "dnet-send: sent 0, ip true, closed true" in done.stdout  # seed: send returns nothing
        out, _ = capture.communicate(timeout=30)
    finally:
        if capture.poll() is None:
            capture.kill()
    frames = [bytes.fromhex(line) for line in out.split()]
    assert frame in frames
    ip_frames = [f for f in frames if f[12:14] == b"\x08\x00"]
    assert len(ip_frames) == 1 and ip_frames[0][14:] == packet
    assert ip_frames[0][:6] == mac_of(b, "vB")  # the kernel resolved the next hop


def test_without_the_privilege_dnet_says_what_is_missing(veth_pair, tmp_path):
    a, _ = veth_pair
    script = dnet_script(tmp_path, b"x" * 60, ipv4_packet(MARKER))
    done = run_nsecluster("scan", "-n", "-Pn", "-p", "1", "127.0.0.1", "--script", script,
                          netns=a.name, without_raw=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert ("dnet-send: open: raw packets need a privileged worker (root or CAP_NET_RAW); "
            "this process is not privileged") in done.stdout


HOST_FIELDS_SCRIPT = """
local nmap = require "nmap"
local stdnse = require "stdnse"
description = "Prints the host table's link-level fields."
categories = {"safe"}
hostrule = function() return true end
action = function(host)
  local function hex(v) return v and stdnse.tohex(v) or "nil" end
  return ("interface=%s direct=%s mac=%s src=%s next=%s"):format(tostring(host.interface),
    tostring(host.directly_connected), hex(host.mac_addr), hex(host.mac_addr_src),
    hex(host.mac_addr_next_hop))
end
"""


def test_the_host_table_has_the_far_sides_mac_address(veth_pair, tmp_path):
    a, b = veth_pair
    server = b.popen(sys.executable, "-c",
                     "import socket, time\n"
                     "s = socket.socket(); s.bind(('192.0.2.2', 80)); s.listen()\n"
                     "print('ready', flush=True); time.sleep(30)",
                     stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        script = tmp_path / "link-fields.nse"
        script.write_text(HOST_FIELDS_SCRIPT)
        done = run_nsecluster("scan", "-n", "-Pn", "-p", "80", "192.0.2.2", "--script",
                              script, netns=a.name)
    finally:
        server.kill()
        server.wait(timeout=10)
    assert done.returncode == 0, done.stderr

    far, near = mac_of(b, "vB").hex(), mac_of(a, "vA").hex()
    assert (f"link-fields: interface=vA direct=true mac={far} src={near} next={far}"
            in done.stdout), done.stdout


SEED_CAPTURE_SCRIPT = """
local nmap = require "nmap"
description = "The seed's capture: a BPF filter, then a packet hash chosen by pcap_register."
categories = {"safe"}
prerule = function() return true end
action = function()
  local capture = nmap.new_socket()
  capture:set_timeout(1000)
  capture:pcap_open("vA", 512, 0, function(length, l2, l3) return l3:sub(29, 32) end,
                    "udp and dst port 5555")
  capture:pcap_register("PASS")
  local sender = nmap.new_socket("udp")
  for _, send in ipairs({{5555, "SKIP one"}, {6666, "PASS filtered out"}, {5555, "PASS two"}}) do
    sender:connect("192.0.2.2", send[1], "udp")
    sender:send(send[2])
    sender:close()
  end
  local got = {}
  for _ = 1, 2 do
    local status, length, l2, l3 = capture:pcap_receive()
    got[#got + 1] = status and (#l2 .. "+" .. #l3 .. " " .. l3:sub(29)) or tostring(length)
  end
  capture:pcap_close()
  return table.concat(got, " | ")
end
"""

NMAP7_CAPTURE_SCRIPT = """
local nmap = require "nmap"
description = "Nmap 7's capture: every packet the filter passes, with its time."
categories = {"safe"}
prerule = function() return true end
action = function()
  local capture = nmap.new_socket()
  capture:set_timeout(1000)
  capture:pcap_open("vA", 512, false, "udp and dst port 5555")
  local sender = nmap.new_socket("udp")
  for _, send in ipairs({{5555, "ONE"}, {6666, "TWO"}, {5555, "THREE"}}) do
    sender:connect("192.0.2.2", send[1], "udp")
    sender:send(send[2])
    sender:close()
  end
  local got = {}
  for _ = 1, 3 do
    local status, length, l2, l3, moment = capture:pcap_receive()
    got[#got + 1] = status and (l3:sub(29) .. " " .. math.type(moment)) or length
  end
  capture:close()
  return table.concat(got, " | ")
end
"""


def test_the_seeds_capture_delivers_only_what_the_filter_and_the_hash_select(veth_pair,
                                                                            tmp_path):
    a, _ = veth_pair
    script = tmp_path / "seed-capture.nse"
    script.write_text(SEED_CAPTURE_SCRIPT)
    done = run_nsecluster("scan", "-n", "-Pn", "-p", "1", "127.0.0.1", "--script", script,
                          netns=a.name)
    assert done.returncode == 0, done.stderr
    assert "seed-capture: 14+36 PASS two | TIMEOUT" in done.stdout, done.stdout


def test_nmap7s_capture_delivers_every_packet_the_filter_passes(veth_pair, tmp_path):
    a, _ = veth_pair
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "nmap7-capture.nse").write_text(NMAP7_CAPTURE_SCRIPT)
    done = run_nsecluster("scan", "-n", "-Pn", "-p", "1", "127.0.0.1", "--datadir", tmp_path,
                          "--script", "nmap7-capture", netns=a.name)
    assert done.returncode == 0, done.stderr
    assert "nmap7-capture: ONE float | THREE float | TIMEOUT" in done.stdout, done.stdout


def test_the_arp_neighbour_script_finds_the_far_sides_mac(veth_pair, tmp_path):
    """Our raw-packet script: an ARP request sent with dnet, the reply captured with pcap."""
    a, b = veth_pair
    done = run_nsecluster("scan", "-n", "-Pn", "-sS", "-p", "80", "192.0.2.2", "--script",
                          "arp-neighbour", "-oX", "-", netns=a.name)
    assert done.returncode == 0, done.stderr
    far = ":".join(f"{octet:02x}" for octet in mac_of(b, "vB"))
    assert f'<script id="arp-neighbour" output="{far}"><elem key="mac">{far}</elem>' \
        in done.stdout, done.stdout
