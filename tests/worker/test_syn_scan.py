"""SYN scan (-sS) between two network namespaces made here: it finds exactly the ports a
connect scan finds, and the ports Nmap's own SYN scan finds; without the privilege it quits
with one clear line, as Nmap does."""
from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

from conftest import run_nsecluster

OPEN_PORTS = (22, 80, 443, 1234, 8080, 31337)
LISTEN = ("import socket, sys, time\n"
          "held = []\n"
          "for port in map(int, sys.argv[1:]):\n"
          "    s = socket.socket(); s.bind(('192.0.2.2', port)); s.listen(); held.append(s)\n"
          "print('ready', flush=True); time.sleep(60)")


def port_states(xml_text: str) -> dict[int, str]:
    states = {}
    for port in ET.fromstring(xml_text).iter("port"):
        states[int(port.get("portid"))] = port.find("state").get("state")
    return states


def reason_ttls(xml_text: str) -> dict[int, str]:
    """The TTL of each listed port's answer, as XML's reason_ttl carries it."""
    return {int(port.get("portid")): port.find("state").get("reason_ttl")
            for port in ET.fromstring(xml_text).iter("port")}


def test_syn_scan_finds_what_connect_scan_and_nmap_find(veth_pair):
    a, b = veth_pair
    server = b.popen(sys.executable, "-c", LISTEN, *map(str, OPEN_PORTS),
                     stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        found = {}
        ttls = {}
        for scan in ("-sS", "-sT"):
            done = run_nsecluster("scan", "-n", "-Pn", scan, "-p", "1-40000", "192.0.2.2",
                                  "-oX", "-", netns=a.name)
            assert done.returncode == 0, done.stderr
            found[scan] = port_states(done.stdout)
            ttls[scan] = reason_ttls(done.stdout)
        nmap = a.run(shutil.which("nmap"), "-n", "-Pn", "-sS", "-p", "1-40000", "192.0.2.2",
                     "-oX", "-")
        found["nmap"] = port_states(nmap.stdout)
        ttls["nmap"] = reason_ttls(nmap.stdout)
    finally:
        server.kill()
        server.wait(timeout=10)
    opened = {scan: sorted(p for p, s in states.items() if s == "open")
              for scan, states in found.items()}
    assert opened["-sS"] == list(OPEN_PORTS)
    assert opened["-sS"] == opened["-sT"] == opened["nmap"]
    # The SYN/ACKs' TTL, as Nmap reports it; a connect scan sees no packet (0).
    assert ttls["-sS"] == ttls["nmap"] and set(ttls["nmap"].values()) == {"64"}
    assert set(ttls["-sT"].values()) == {"0"}


def test_syn_scan_without_the_privilege_quits_with_one_line(veth_pair):
    a, _ = veth_pair
    done = run_nsecluster("scan", "-n", "-Pn", "-sS", "-p", "80", "192.0.2.2",
                          netns=a.name, without_raw=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"}, inherit_env=False)
    assert done.returncode == 1
    assert done.stderr == ("nsecluster: You requested a scan type which requires root "
                           "privileges (-sS needs raw sockets: run as root or with "
                           "CAP_NET_RAW, or use -sT)\n")
