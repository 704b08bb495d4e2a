"""Shared test peers: listeners on 127.0.0.0/8, private network namespaces, the CLI."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NSECLUSTER = [sys.executable, "-m", "coordinator.cli"]


def run_nsecluster(*args, input=None, timeout=120, netns=None, env=None, cwd=None):
    """Run the real command line; returns CompletedProcess with text stdout/stderr."""
    command = [*NSECLUSTER, *map(str, args)]
    if netns is not None:
        command = ["ip", "netns", "exec", netns, *command]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
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
