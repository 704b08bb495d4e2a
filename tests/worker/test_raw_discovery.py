"""Privileged host discovery between two namespaces made here, side by side with root Nmap:
ARP on the directly connected segment (with the host's MAC in every output), ICMP and TCP
probes to a routed host, localhost without a probe, -e, --spoof-mac, and the unprivileged
fallback to connect discovery."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from conftest import run_nsecluster

ROUTED = "198.51.100.1"  # on b's loopback, reached from a through 192.0.2.2
TARGETS = ("192.0.2.2", "192.0.2.99", ROUTED, "198.51.100.7", "127.0.0.1", "192.0.2.1")
FAST = ("--max-retries", "1", "--initial-rtt-timeout", "300ms", "--max-rtt-timeout", "300ms")


@pytest.fixture
def routed_pair(veth_pair):
    a, b = veth_pair
    b.run("ip", "addr", "add", f"{ROUTED}/32", "dev", "lo")
    a.run("ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.2")
    return a, b


def mac_of(space, device) -> str:
    return json.loads(space.run("ip", "-j", "link", "show", device).stdout)[0][
        "address"].upper()


def hosts_of(xml_text: str) -> dict[str, tuple]:
    """address -> (state, reason, reason_ttl, MAC, vendor) from -oX output."""
    found = {}
    for host in ET.fromstring(xml_text).iter("host"):
        status = host.find("status")
        addresses = {a.get("addrtype"): a for a in host.findall("address")}
        mac = addresses.get("mac")
        found[addresses["ipv4"].get("addr")] = (
            status.get("state"), status.get("reason"), status.get("reason_ttl"),
            mac.get("addr") if mac is not None else None,
            mac.get("vendor") if mac is not None else None)
    return found


def both(space, nmap_path, *args, env=None):
    """(ours, Nmap's) -oX results of the same command line in ``space``."""
    ours = run_nsecluster("scan", *args, "-oX", "-", netns=space.name, env=env)
    assert ours.returncode == 0, ours.stderr
    theirs = space.run(nmap_path, *args, "-oX", "-", timeout=60)
    return hosts_of(ours.stdout), hosts_of(theirs.stdout)


def test_arp_icmp_and_localhost_discovery_match_nmap(routed_pair, nmap_path):
    a, b = routed_pair
    ours, nmap = both(a, nmap_path, "-n", "-sn", "-v", "--reason", *TARGETS)
    assert ours == nmap
    assert ours["192.0.2.2"] == ("up", "arp-response", "0", mac_of(b, "vB"), None)
    assert ours["192.0.2.99"][:2] == ("down", "no-response")
    assert ours[ROUTED] == ("up", "echo-reply", "64", None, None)
    assert ours["198.51.100.7"][:2] == ("down", "no-response")
    assert ours["127.0.0.1"][:2] == ours["192.0.2.1"][:2] == ("up", "localhost-response")


@pytest.mark.parametrize("rules, reason", [
    ([["-p", "icmp", "-j", "DROP"]], "reset"),  # ACK to 80 and SYN to 443 are both reset
    ([["-p", "icmp", "--icmp-type", "echo-request", "-j", "DROP"], ["-p", "tcp", "-j", "DROP"]],
     "timestamp-reply"),
])
def test_a_routed_host_that_drops_some_probes_is_still_up(routed_pair, nmap_path, rules,
                                                          reason):
    a, b = routed_pair
    for rule in rules:
        b.run("iptables", "-A", "INPUT", *rule)
    ours, nmap = both(a, nmap_path, "-n", "-sn", "--reason", ROUTED)
    assert ours == nmap == {ROUTED: ("up", reason, "64", None, None)}


def test_syn_ack_from_an_open_port_and_silence_from_a_router(routed_pair, nmap_path):
    a, b = routed_pair
    server = b.popen(sys.executable, "-c",
                     "import socket, time\ns = socket.socket()\n"
                     f"s.bind(('{ROUTED}', 443)); s.listen()\nprint('ready', flush=True)\n"
                     "time.sleep(60)", stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        b.run("iptables", "-A", "INPUT", "-p", "icmp", "-j", "DROP")
        b.run("iptables", "-A", "INPUT", "-p", "tcp", "--dport", "80", "-j", "DROP")
        # b routes, but 198.51.100.9 is unreachable there: a router's ICMP error, not an answer
        b.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        b.run("ip", "route", "add", "unreachable", "198.51.100.9/32")
        ours, nmap = both(a, nmap_path, "-n", "-sn", "-v", "--reason", *FAST, ROUTED,
                          "198.51.100.9")
    finally:
        server.kill()
        server.wait(timeout=10)
    assert ours == nmap
    assert ours[ROUTED] == ("up", "syn-ack", "64", None, None)
    assert ours["198.51.100.9"][:2] == ("down", "no-response")


def test_mac_address_in_every_output_of_a_connect_scan_as_nmap_writes_it(routed_pair,
                                                                        nmap_path, tmp_path):
    a, b = routed_pair
    b.run("ip", "link", "set", "vB", "address", "00:0c:29:12:34:56")  # a vendor Nmap knows
    args = ("-n", "-sT", "-p", "22,80", "--reason", "192.0.2.2", ROUTED)
    ours, nmap = both(a, nmap_path, *args)
    assert ours == nmap
    assert ours["192.0.2.2"][3] == "00:0C:29:12:34:56" and ours["192.0.2.2"][4]

    def host_blocks(text):
        lines = [line.split(" (")[0] if line.startswith("Host is up") else line
                 for line in text.splitlines()]  # latency differs run to run
        start = next(i for i, line in enumerate(lines) if line.startswith("Nmap scan report"))
        end = next(i for i, line in enumerate(lines) if line.startswith("Nmap done"))
        return lines[start:end]

    normal = run_nsecluster("scan", *args, "-oJ", tmp_path / "scan.json", netns=a.name)
    assert normal.returncode == 0, normal.stderr
    reference = a.run(nmap_path, *args, timeout=60)
    assert host_blocks(normal.stdout) == host_blocks(reference.stdout)
    assert f"MAC Address: 00:0C:29:12:34:56 ({ours['192.0.2.2'][4]})" in normal.stdout
    records = [json.loads(line) for line in (tmp_path / "scan.json").read_text().splitlines()]
    macs = {r["address"]: r["mac"] for r in records if r["type"] == "host"}
    assert macs == {"192.0.2.2": {"address": "00:0C:29:12:34:56",
                                  "vendor": ours["192.0.2.2"][4]}, ROUTED: None}


def test_unknown_vendor_and_no_ping_syn_scan_arp(routed_pair, nmap_path):
    a, b = routed_pair
    b.run("ip", "link", "set", "vB", "address", "02:00:00:aa:bb:cc")  # locally administered
    text = run_nsecluster("scan", "-n", "-sn", "192.0.2.2", netns=a.name).stdout
    assert "MAC Address: 02:00:00:AA:BB:CC (Unknown)" in text
    # -Pn with a raw scan: Nmap still ARPs the segment (its frames need the address)
    ours, nmap = both(a, nmap_path, "-n", "-Pn", "-sS", "-p", "80", "-v", *FAST, "192.0.2.2",
                      "192.0.2.99", ROUTED)
    assert {k: v[:2] + v[3:] for k, v in ours.items()} == \
        {k: v[:2] + v[3:] for k, v in nmap.items()}
    assert ours["192.0.2.2"][:2] == ("up", "arp-response")
    assert ours["192.0.2.99"][0] == "down" and ours[ROUTED][1] == "user-set"


INTERFACE_SCRIPT = """\
categories = {"safe"}
hostrule = function() return true end
action = function(host)
  local mac = (host.mac_addr or ""):gsub(".", function(c) return ("%02X"):format(c:byte()) end)
  return tostring(nmap.get_interface()) .. " " .. mac
end
"""


def test_interface_option(routed_pair, nmap_path, tmp_path):
    a, b = routed_pair
    ours, nmap = both(a, nmap_path, "-n", "-sn", "--reason", "-e", "vA", "192.0.2.2", ROUTED,
                      "127.0.0.1")
    assert ours == nmap
    assert ours["192.0.2.2"][:2] == ("up", "arp-response")
    assert ours[ROUTED][:2] == ("up", "echo-reply")
    looped, nmap_looped = both(a, nmap_path, "-n", "-sn", "--reason", "-e", "lo", "192.0.2.2")
    assert looped == nmap_looped == {"192.0.2.2": ("up", "localhost-response", "0", None, None)}
    vb_mac = mac_of(b, "vB").replace(":", "")
    script = tmp_path / "which-interface.nse"
    script.write_text(INTERFACE_SCRIPT)
    for interface, expected in (("vA", "vA"), (None, "nil")):
        option = ("-e", interface) if interface else ()
        done = run_nsecluster("scan", "-n", "-sn", *option, "--script", script, "192.0.2.2",
                              netns=a.name)
        assert done.returncode == 0, done.stderr
        assert f"|_which-interface: {expected} {vb_mac}\n" in done.stdout  # ARP's answer
    missing = run_nsecluster("scan", "-n", "-sn", "-e", "nosuch0", "192.0.2.2", netns=a.name)
    assert missing.returncode == 1
    assert missing.stderr == ("nsecluster: I cannot figure out what source address to use "
                              "for device nosuch0, does it even exist?\n")
    assert missing.stdout == ""


ARP_CAPTURE = """\
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind(("vB", 0x0806))
s.settimeout(20)
print("ready", flush=True)
while True:
    frame = s.recv(128)
    if frame[20:22] == b"\\x00\\x01" and frame[38:42] == socket.inet_aton("192.0.2.2"):
        print(frame[6:12].hex(":"), frame[22:28].hex(":"), flush=True)
        break
"""


def test_spoofed_mac_is_the_source_of_the_arp_request(routed_pair, nmap_path):
    a, b = routed_pair
    capture = b.popen(sys.executable, "-c", ARP_CAPTURE, stdout=subprocess.PIPE, text=True)
    try:
        assert capture.stdout.readline().strip() == "ready"
        done = run_nsecluster("scan", "-n", "-sn", "--reason", "--spoof-mac",
                              "02:11:22:33:44:55", "192.0.2.2", netns=a.name)
        seen = capture.stdout.readline().split()
    finally:
        capture.kill()
        capture.wait(timeout=10)
    assert done.returncode == 0, done.stderr
    assert seen == ["02:11:22:33:44:55", "02:11:22:33:44:55"]  # frame source, ARP sender
    assert "Spoofing MAC address 02:11:22:33:44:55 (No registered vendor)\n" in done.stdout
    assert "Host is up, received arp-response" in done.stdout  # the reply still came back
    reference = a.run(nmap_path, "-n", "-sn", "--spoof-mac", "02:11:22:33:44:55", "192.0.2.2",
                      timeout=60)
    assert "Spoofing MAC address 02:11:22:33:44:55 (No registered vendor)\n" in reference.stdout


# (argument, how many leading characters of the address it fixes; 0: refused)
@pytest.mark.parametrize("argument, fixed", [
    ("0020F2", 8), ("02:11:22", 8), ("0211223344", 14), ("vmware", 8), ("zzzz", 0),
    ("0:1:2:3:4:5", 0), ("00:0c:29:11:22:33:44", 0)])
def test_spoof_mac_forms_like_nmap(routed_pair, nmap_path, argument, fixed):
    """The random bytes differ; the fixed prefix, the vendor and the refusals do not."""
    a, _ = routed_pair
    ours = run_nsecluster("scan", "-n", "-sn", "--spoof-mac", argument, "192.0.2.2",
                          netns=a.name)
    theirs = a.run(nmap_path, "-n", "-sn", "--spoof-mac", argument, "192.0.2.2", check=False,
                   timeout=60)
    if not fixed:
        assert theirs.returncode == 1 and ours.returncode == 1
        assert ours.stderr == "nsecluster: " + theirs.stderr.splitlines()[0] + "\n"
        return

    def spoofed(text):
        line = next(line for line in text.splitlines() if line.startswith("Spoofing"))
        address, vendor = line.split(" ", 4)[3:]
        return address[:fixed], vendor

    assert ours.returncode == 0, ours.stderr
    assert spoofed(ours.stdout) == spoofed(theirs.stdout)


def test_unprivileged_discovery_stays_connect_style(routed_pair):
    a, _ = routed_pair
    done = run_nsecluster("scan", "-n", "-sn", "--reason", "-oX", "-", "192.0.2.2",
                          "127.0.0.1", netns=a.name, without_raw=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"}, inherit_env=False)
    assert done.returncode == 0, done.stderr
    found = hosts_of(done.stdout)
    assert {k: v[:2] for k, v in found.items()} == {"192.0.2.2": ("up", "conn-refused"),
                                                     "127.0.0.1": ("up", "conn-refused")}
    assert found["192.0.2.2"][3] is None  # no ARP, no MAC: as unprivileged Nmap
