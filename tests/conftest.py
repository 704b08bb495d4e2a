"""Shared test peers: listeners on 127.0.0.0/8, private network namespaces, the CLI, and
Nmap itself as the reference."""
from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from worker.services import ServiceTable

REPO = Path(__file__).resolve().parent.parent
NSECLUSTER = [sys.executable, "-m", "coordinator.cli"]
NMAP_SERVICES = Path("/usr/share/nmap/nmap-services")  # from Debian's nmap-common
# Root without CAP_NET_RAW (nor CAP_NET_ADMIN): raw sockets are refused.
WITHOUT_RAW = ["setpriv", "--inh-caps=-all", "--bounding-set=-net_raw,-net_admin"]


def run_nsecluster(*args, input=None, timeout=120, netns=None, env=None, cwd=None,
                   without_raw=False, inherit_env=True):
    """Run the real command line; returns CompletedProcess with text stdout/stderr.
    ``netns``: inside that namespace; ``without_raw``: as root without raw sockets
    (WITHOUT_RAW, inside the namespace); ``inherit_env=False``: the environment is only
    PYTHONPATH and ``env``, not this process's."""
    command = [*NSECLUSTER, *map(str, args)]
    if without_raw:
        command = [*WITHOUT_RAW, *command]
    if netns is not None:
        command = ["ip", "netns", "exec", netns, *command]
    full_env = {**(os.environ if inherit_env else {}), "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(command, input=input, capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=cwd or REPO)


class Listeners:
    """TCP listeners the test owns; the kernel completes handshakes from the backlog."""

    def __init__(self):
        self.sockets: list[socket.socket] = []

    def listen(self, address: str, port: int = 0, backlog: int = 512) -> int:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(backlog)
        self.sockets.append(sock)
        return sock.getsockname()[1]

    def close(self):
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


@pytest.fixture
def listeners():
    owned = Listeners()
    yield owned
    owned.close()


def free_port(address: str = "127.0.0.1") -> int:
    """A port nothing listens on at ``address`` right now (closed for a scan)."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


class Netns:
    """A private network namespace with only loopback: nothing sent inside can leave it."""

    def __init__(self, name: str):
        self.name = name
        self.etc = Path("/etc/netns") / name

    def run(self, *command, check=True, **kwargs):
        return subprocess.run(["ip", "netns", "exec", self.name, *map(str, command)],
                              check=check, capture_output=True, text=True, **kwargs)

    def popen(self, *command, **kwargs):
        return subprocess.Popen(["ip", "netns", "exec", self.name, *map(str, command)], **kwargs)

    def set_resolv_conf(self, text: str):
        """`ip netns exec` mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf."""
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.etc / "resolv.conf").write_text(text)

    def destroy(self):
        pids = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True,
                              text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        shutil.rmtree(self.etc, ignore_errors=True)


@pytest.fixture
def netns():
    with make_netns() as ns:
        yield ns


@contextlib.contextmanager
def make_netns():
    """A new Netns with loopback up, destroyed (its processes killed) on leaving."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail("network namespace tests need root and iproute2 (CI provides both)")
    name = f"nsct-{uuid.uuid4().hex[:10]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    ns = Netns(name)
    try:
        ns.run("ip", "link", "set", "lo", "up")
        yield ns
    finally:
        ns.destroy()


@pytest.fixture
def veth_pair():
    """Namespaces a and b joined by a veth pair: vA (192.0.2.1/24) in a, vB (192.0.2.2/24)
    in b. Raw-packet tests send only here."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail("raw packet tests need root and iproute2 (CI provides both)")
    tag = uuid.uuid4().hex[:8]
    spaces = [Netns(f"nsct-a-{tag}"), Netns(f"nsct-b-{tag}")]
    for space in spaces:
        subprocess.run(["ip", "netns", "add", space.name], check=True)
    a, b = spaces
    try:
        subprocess.run(["ip", "link", "add", "vA", "netns", a.name, "type", "veth", "peer",
                        "name", "vB", "netns", b.name], check=True)
        for space, device, address in ((a, "vA", "192.0.2.1/24"), (b, "vB", "192.0.2.2/24")):
            space.run("ip", "link", "set", "lo", "up")
            space.run("ip", "addr", "add", address, "dev", device)
            space.run("ip", "link", "set", device, "up")
        yield a, b
    finally:
        for space in spaces:
            space.destroy()


@pytest.fixture
def utc(monkeypatch):
    """Local time is UTC, so headers and footers read as in the transcripts."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# --------------------------------------------------------------------------------------------
# Nmap as the reference


@pytest.fixture(scope="session")
def nmap_path() -> str:
    """The nmap binary. Without it a test that compares with Nmap fails, naming what is
    missing (a skip would fail the run as well, see pytest_sessionfinish)."""
    path = shutil.which("nmap")
    if path is None:
        pytest.fail("nmap is required (.ci/setup installs Debian's nmap)")
    return path


@pytest.fixture(scope="session")
def real_table() -> ServiceTable:
    """Nmap's own service table."""
    if not NMAP_SERVICES.is_file():
        pytest.fail(f"{NMAP_SERVICES} is required (.ci/setup installs Debian's nmap-common)")
    return ServiceTable.parse_nmap_services(NMAP_SERVICES.read_text(), "real")


def nmap_scaninfo(nmap: str, *options: str) -> dict[str, set[int]]:
    """Ports Nmap would scan per protocol, from ``<scaninfo services=...>`` (empty when Nmap
    rejects the options). The only target is excluded, so Nmap scans nothing and sends no
    packet."""
    command = [nmap, "-n", "-Pn", "--datadir", str(NMAP_SERVICES.parent), *options,
               "-oX", "-", "127.0.0.1", "--exclude", "127.0.0.1"]
    output = subprocess.run(command, capture_output=True, text=True, timeout=60).stdout
    result = {}
    for protocol, services in re.findall(r'<scaninfo [^>]*protocol="(\w+)"[^>]*'
                                         r' services="([^"]*)"', output):
        ports: set[int] = set()
        for part in filter(None, services.split(",")):
            low, _, high = part.partition("-")
            ports.update(range(int(low), int(high or low) + 1))
        result[protocol] = ports
    return result


def nmap_tcp_service_names() -> dict[int, str]:
    """{port: name} of the TCP entries in Nmap's nmap-services."""
    names = {}
    with NMAP_SERVICES.open() as lines:
        for line in lines:
            parts = line.split()
            if len(parts) >= 2 and not line.startswith("#") and parts[1].endswith("/tcp"):
                names[int(parts[1].split("/")[0])] = parts[0]
    return names


def loopback_address() -> str:
    """A random 127/8 address, so parallel tests never scan each other's listeners."""
    return f"127.{random.randint(100, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def scan_listeners_with_nmap(nmap: str, listeners: Listeners, opened, *args: str) -> str:
    """Listens on the ``opened`` ports of a fresh loopback address (tests may run in
    parallel), runs ``nmap --unprivileged -n ARGS ADDRESS``, which must succeed, and returns
    the address."""
    address = loopback_address()
    for n in opened:
        listeners.listen(address, n)
    result = subprocess.run([nmap, "--unprivileged", "-n", *args, address],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return address


def pytest_sessionfinish(session, exitstatus):
    """A skipped test is a test that did not run: after .ci/setup nothing may be missing
    (nmap, nmap-common, ndiff, Redis, root), so any skip fails the run, naming the reason."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and session.exitstatus == 0:
        reasons = sorted({str(report.longrepr[-1]) if isinstance(report.longrepr, tuple)
                          else str(report.longrepr) for report in skipped})
        reporter.write_line("FAILED: tests were skipped (run .ci/setup first): "
                            + "; ".join(reasons), red=True)
        session.exitstatus = 1
