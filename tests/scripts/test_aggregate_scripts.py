"""Our own scripts that work across threads, checked on nsecluster and, since they use only
the NSE API, under the installed nmap too (the same script file, Nmap's libraries):

* scripts/shared-banners.nse: port threads record each open port's greeting, SSH version
  (fake ones and two real OpenSSH servers) or HTTP Server header in nmap.registry; the
  postrule reports the values that several hosts share, in a fixed order, as text and as
  XML structure. The scan is cut into host groups of two, so the registry has to carry the
  records from group to group.
* scripts/serial-banner.nse: one nmap.mutex shared by every thread, so the greeters on nine
  hosts see one script connection at a time (the servers measure it), while every host still
  gets its line. The banner script on the same servers, without the mutex, is the control
  that shows the measurement sees overlaps.

A seeded fuzz run sends random greetings and answers to all three, through the engine.
"""
from __future__ import annotations

import random
import socket
import threading
import time
from pathlib import Path

import pytest
from banner_peer import (BannerPeers, greet, read_until, scan, silent, start_sshd,
                         stop_process)
from nse_support import host as scanned_host
from nse_support import run

REPO = Path(__file__).resolve().parents[2]
SHARED = str(REPO / "scripts" / "shared-banners.nse")
SERIAL = str(REPO / "scripts" / "serial-banner.nse")
HOSTS = [f"127.0.0.{n}" for n in range(71, 77)]


def http_server(name: bytes):
    def handler(conn, stopping):
        read_until(conn, b"\r\n\r\n")
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nServer: " + name + b"\r\n\r\n")
    return handler


def serve_at(peers: BannerPeers, address: str, port: int, handler):
    peers.serve(handler, port=port, address=address)


SSHD_PORT = 2200


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """Real OpenSSH servers on two hosts; yields their version string."""
    directory = tmp_path_factory.mktemp("sshd")
    procs = []
    try:
        for address in HOSTS[:2]:
            procs.append(start_sshd(address, SSHD_PORT, directory))
        with socket.create_connection((HOSTS[0], SSHD_PORT), timeout=5) as conn:
            version = read_until(conn, b"\r\n").decode().strip()
        yield version
    finally:
        for proc in procs:
            stop_process(proc)


@pytest.fixture(scope="module")
def shared_peers(sshd):
    peers = BannerPeers(HOSTS[0])
    try:
        for address in HOSTS[:3]:
            serve_at(peers, address, 2222, greet(b"SSH-2.0-TestSSH_1.0\r\n"))
        serve_at(peers, "127.0.0.74", 2222, greet(b"SSH-2.0-Other_2.0\r\n"))
        for address in ("127.0.0.71", "127.0.0.74"):
            serve_at(peers, address, 8080, http_server(b"TestHTTP/1.1"))
        serve_at(peers, "127.0.0.75", 8080, http_server(b"Other"))
        serve_at(peers, "127.0.0.76", 8080, silent)  # neither greets nor answers HTTP
        for address, port in (("127.0.0.72", 2121), ("127.0.0.75", 2121),
                              ("127.0.0.75", 2122)):
            serve_at(peers, address, port, greet(b"220 shared ftp\r\n"))
        serve_at(peers, "127.0.0.76", 2121, greet(b"220 unique\r\n"))
        for address in ("127.0.0.73", "127.0.0.76"):
            serve_at(peers, address, 2525, greet(b"\x00\xffbin\r\n"))
        yield peers
    finally:
        peers.close()


PORTS = [2121, 2122, 2200, 2222, 2525, 8080]
GROUP_OPTIONS = ["--max-hostgroup", "2"]

SHARED_OUTPUT = """
  SSH-2.0-TestSSH_1.0 (ssh, 3 hosts)
    127.0.0.71:2222
    127.0.0.72:2222
    127.0.0.73:2222
  220 shared ftp (banner, 2 hosts)
    127.0.0.72:2121
    127.0.0.75:2121
    127.0.0.75:2122
  \\x00\\xFFbin (banner, 2 hosts)
    127.0.0.73:2525
    127.0.0.76:2525
  TestHTTP/1.1 (http-server, 2 hosts)
    127.0.0.71:8080
    127.0.0.74:8080
  {sshd} (ssh, 2 hosts)
    127.0.0.71:2200
    127.0.0.72:2200"""


def group(value, kind, hosts, ports):
    return (None, [("value", value), ("kind", kind), ("hosts", str(hosts)),
                   ("ports", [(None, p) for p in ports])])


SHARED_STRUCTURE = [
    group("SSH-2.0-TestSSH_1.0", "ssh", 3,
          ["127.0.0.71:2222", "127.0.0.72:2222", "127.0.0.73:2222"]),
    group("220 shared ftp", "banner", 2,
          ["127.0.0.72:2121", "127.0.0.75:2121", "127.0.0.75:2122"]),
    group("\\x00\\xFFbin", "banner", 2, ["127.0.0.73:2525", "127.0.0.76:2525"]),
    group("TestHTTP/1.1", "http-server", 2, ["127.0.0.71:8080", "127.0.0.74:8080"]),
]  # then the real sshd's group, whose value is known at run time


@pytest.fixture(scope="module")
def shared_scans(shared_peers, tmp_path_factory):
    """Ours on nsecluster and on nmap, at the same time."""
    from concurrent.futures import ThreadPoolExecutor

    def one(tool):
        return scan(tool, tmp_path_factory.mktemp(f"shared-{tool}"), HOSTS, PORTS, SHARED,
                    args="shared-banners.timeout=1s", extra=GROUP_OPTIONS)

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(("ours", "nmap"), pool.map(one, ("ours", "nmap"))))


def test_shared_banners_groups(shared_scans, sshd):
    assert sshd.startswith("SSH-2.0-OpenSSH_")
    ours, _, stdout = shared_scans["ours"]
    assert ours["post"].output == SHARED_OUTPUT.format(sshd=sshd)
    assert ours["post"].structure[:-1] == SHARED_STRUCTURE
    assert ours["post"].structure[-1] == group(sshd, "ssh", 2,
                                               ["127.0.0.71:2200", "127.0.0.72:2200"])
    assert "Post-scan script results:\n| shared-banners: \n|   SSH-2.0-TestSSH_1.0" in stdout
    # The port threads give no output of their own.
    assert [key for key in ours if key != "post" and key[0] != "service"] == []


def test_shared_banners_same_under_nmap(shared_scans):
    ours, _, _ = shared_scans["ours"]
    theirs, _, _ = shared_scans["nmap"]
    assert theirs["post"].output == ours["post"].output
    assert theirs["post"].structure == ours["post"].structure


def test_shared_banners_min_hosts(shared_peers, tmp_path):
    """min-hosts=3 keeps only the SSH group; min-hosts=1 shows single hosts too (on the
    three ports where nothing is silent, for speed)."""
    ours, _, _ = scan("ours", tmp_path, HOSTS, PORTS, SHARED,
                      args="shared-banners.timeout=1s,shared-banners.min-hosts=3")
    assert ours["post"].output == "\n" + "\n".join(SHARED_OUTPUT.split("\n")[1:5])
    assert ours["post"].structure == SHARED_STRUCTURE[:1]
    ours, _, _ = scan("ours", tmp_path, HOSTS, [2121, 2222], SHARED,
                      args="shared-banners.min-hosts=1")
    assert ours["post"].output == """
  SSH-2.0-TestSSH_1.0 (ssh, 3 hosts)
    127.0.0.71:2222
    127.0.0.72:2222
    127.0.0.73:2222
  220 shared ftp (banner, 2 hosts)
    127.0.0.72:2121
    127.0.0.75:2121
  220 unique (banner, 1 hosts)
    127.0.0.76:2121
  SSH-2.0-Other_2.0 (ssh, 1 hosts)
    127.0.0.74:2222"""


def test_shared_banners_nothing_shared_gives_no_postscan_result(shared_peers, tmp_path):
    ours, _, stdout = scan("ours", tmp_path, ["127.0.0.74", "127.0.0.76"], [2121, 2222],
                           SHARED)
    assert "post" not in ours and "Post-scan script results" not in stdout


# ------------------------------------------------------------------------------ mutex

SERIAL_HOSTS = [f"127.0.0.{n}" for n in range(71, 80)]
SERIAL_PORT = 7007
HOLD_S = 0.25  # how long a greeter waits before greeting (a port scan probe leaves sooner)
SLACK_S = 0.03  # see Greeters.peak


class Greeters:
    """A greeter on each host that counts the script connections open at once, across all
    hosts. A connection that closes before the greeting is the port scan's probe and is
    left out."""

    def __init__(self):
        self.peers = BannerPeers(SERIAL_HOSTS[0])
        self.lock = threading.Lock()
        self.spans: list[tuple[float, float]] = []

    def start(self):
        for address in SERIAL_HOSTS:
            self.peers.serve(self.handler(address), port=SERIAL_PORT, address=address)

    def handler(self, address):
        def run(conn, stopping):
            opened = time.monotonic()
            conn.settimeout(HOLD_S)
            try:
                if conn.recv(1) == b"":
                    return  # the probe of the port scan
            except TimeoutError:
                pass
            conn.sendall(f"device at {address}\r\n".encode())
            conn.settimeout(10)
            try:
                while conn.recv(1024):
                    pass
            except OSError:
                pass
            with self.lock:
                self.spans.append((opened, time.monotonic()))
        return run

    def peak(self) -> int:
        """The most script connections open at the same moment. A close is seen by its
        handler thread a little after it happens, and the next connection's accept by
        another thread: an overlap shorter than SLACK_S is that, not two connections."""
        events = sorted([(start, 1) for start, _ in self.spans] +
                        [(end - SLACK_S, -1) for _, end in self.spans],
                        key=lambda e: (e[0], e[1]))
        now = most = 0
        for _, step in events:
            now += step
            most = max(most, now)
        return most

    def reset(self):
        with self.lock:
            self.spans.clear()

    def close(self):
        self.peers.close()


@pytest.fixture(scope="module")
def greeters():
    owned = Greeters()
    try:
        owned.start()
        yield owned
    finally:
        owned.close()


def expected_lines(results: dict) -> dict:
    return {address: results.get((address, SERIAL_PORT)).output
            if (address, SERIAL_PORT) in results else None for address in SERIAL_HOSTS}


@pytest.mark.parametrize("tool", ["ours", "nmap"])
def test_serial_banner_one_connection_at_a_time(greeters, tmp_path, tool):
    greeters.reset()
    results, taken, _ = scan(tool, tmp_path, SERIAL_HOSTS, [SERIAL_PORT], SERIAL,
                             args="serial-banner.timeout=3s")
    assert expected_lines(results) == {a: f"device at {a}" for a in SERIAL_HOSTS}
    assert len(greeters.spans) == len(SERIAL_HOSTS)
    assert greeters.peak() == 1
    assert taken >= len(SERIAL_HOSTS) * HOLD_S  # one after another


def test_without_the_mutex_the_greeters_see_overlaps(greeters, tmp_path):
    """The control: the banner script on the same greeters connects to all at once."""
    greeters.reset()
    results, _, _ = scan("ours", tmp_path, SERIAL_HOSTS, [SERIAL_PORT], "banner",
                         args="banner.timeout=3s")
    assert expected_lines(results) == {a: f"device at {a}" for a in SERIAL_HOSTS}
    assert greeters.peak() > 1


# ------------------------------------------------------------------------------ fuzz

def fuzz_service(seed: int):
    """Seeded: a random greeting, or silence and then a random (or nearly HTTP) answer to
    the request; sometimes in pieces of a few bytes; then close."""
    def handler(conn, stopping):
        rng = random.Random(seed)
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(300)))
        if rng.random() < 0.5:
            data = junk
        else:
            conn.settimeout(2)
            try:
                conn.recv(4096)
            except OSError:
                return
            data = rng.choice([b"HTTP/1.1 200 OK\r\nServer: ", b"HTTP/1.0 ", b"",
                               b"HTTP/1.1 204\r\nSERVER:\t\r\n\r\n"]) + junk
        step = rng.randrange(1, 5) if rng.random() < 0.5 else len(data) or 1
        for i in range(0, len(data), step):
            conn.sendall(data[i:i + step])
    return handler


def test_fuzzed_services_never_break_the_scripts(tmp_path):
    """30 seeded services on one host, through the engine with banner, shared-banners and
    serial-banner, then the post-scan pass: never a Lua error, done in seconds."""
    peers = BannerPeers("127.0.0.77")
    try:
        ports = [(peers.serve(fuzz_service(seed)).port, "open") for seed in range(30)]
        names = ("banner", "shared-banners", "serial-banner")
        sources = {name: (REPO / "scripts" / f"{name}.nse").read_text() for name in names}
        args = {"shared-banners.timeout": "500ms", "serial-banner.timeout": "200ms",
                "banner.timeout": "500ms", "shared-banners.min-hosts": "1"}
        target = scanned_host("127.0.0.77", ports)
        started = time.monotonic()
        done = run(tmp_path, sources, [target], debugging=1, script_args=args)
        post = run(tmp_path, {"shared-banners": sources["shared-banners"]},
                   phase="postrule", engine=done.engine)
        taken = time.monotonic() - started
    finally:
        peers.close()
    log = done.lines() + post.lines()
    assert "threw an error" not in log and "ERROR" not in log, log[-3000:]
    outputs = [s.output for p in target.ports for s in p.scripts]
    assert outputs and not any("ERROR" in (o or "") for o in outputs)
    (result,) = post.results
    assert "(banner, 1 hosts)" in result.output  # the random greetings were recorded
    assert taken < 40, taken
