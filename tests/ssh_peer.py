"""SSH peers for the tests: a real OpenSSH server (``Sshd``) started on a loopback address with
host keys made by ssh-keygen, and ``FakeSsh``, a TCP server that answers every connection with
whatever bytes it is given (whole, or in pieces with pauses), to feed parsers garbage, early
closes and silence. Helpers build SSH-1 and SSH-2 packets and KEXINIT payloads."""
from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path

from tcp_peer import stop_process

SSHD = "/usr/sbin/sshd"
KEY_TYPES = ("rsa", "ecdsa", "ed25519")


# -- packets -----------------------------------------------------------------------------------

def ssh_string(data: bytes | str) -> bytes:
    if isinstance(data, str):
        data = data.encode()
    return struct.pack(">I", len(data)) + data


def packet2(payload: bytes, padding: int | None = None) -> bytes:
    """An SSH-2 binary packet (no MAC) around ``payload``, padded to a multiple of 8."""
    if padding is None:
        padding = 8 - (len(payload) + 5) % 8
        if padding < 4:
            padding += 8
    return struct.pack(">IB", len(payload) + padding + 1, padding) + payload + b"\0" * padding


KEXINIT_ORDER = ("kex", "hostkey", "enc_cs", "enc_sc", "mac_cs", "mac_sc", "comp_cs", "comp_sc",
                 "lang_cs", "lang_sc")


def kexinit(cookie: bytes = b"K" * 16, **lists: str) -> bytes:
    """A KEXINIT payload; name-lists by the keywords of KEXINIT_ORDER (default empty)."""
    body = b"".join(ssh_string(lists.get(name, "")) for name in KEXINIT_ORDER)
    return b"\x14" + cookie + body + b"\0" + b"\0\0\0\0"


def ssh1_mpint(value: int) -> bytes:
    return struct.pack(">H", value.bit_length()) + value.to_bytes((value.bit_length() + 7) // 8,
                                                                  "big")


def packet1(kind: int, data: bytes) -> bytes:
    """An SSH-1 packet: length, 1 to 8 bytes of padding, type, data, CRC-32."""
    length = len(data) + 5
    padding = b"\0" * (8 - length % 8)
    body = padding + bytes([kind]) + data
    return struct.pack(">I", length) + body + struct.pack(">I", zlib.crc32(body))


def ssh1_public_key(host_exp: int, host_mod: int, host_bits: int | None = None,
                    server_exp: int = 65537, server_mod: int | None = None) -> bytes:
    """An SSH_SMSG_PUBLIC_KEY packet."""
    server_mod = server_mod or (1 << 767) + 12345
    host_bits = host_mod.bit_length() if host_bits is None else host_bits
    data = (b"A" * 8 + struct.pack(">I", server_mod.bit_length()) + ssh1_mpint(server_exp)
            + ssh1_mpint(server_mod) + struct.pack(">I", host_bits) + ssh1_mpint(host_exp)
            + ssh1_mpint(host_mod) + struct.pack(">III", 2, 1 << 3, 1 << 2))
    return packet1(2, data)


# -- a scripted server -------------------------------------------------------------------------

class FakeSsh:
    """Answers each connection on (address, port) with ``chunks`` (bytes, sent one after the
    other with ``gap_s`` between), then keeps the connection open ``linger_s`` (reading and
    dropping what the client sends) or closes it at once with ``close=True``.
    ``replies`` may be a callable(connection index) -> list of chunks instead."""

    def __init__(self, address: str, chunks, port: int = 0, gap_s: float = 0.0,
                 linger_s: float = 3.0, close: bool = False):
        self.chunks, self.gap_s, self.linger_s, self.close_early = chunks, gap_s, linger_s, close
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.connections = 0
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            index = self.connections
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn, index), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, index: int) -> None:
        got = bytearray()
        try:
            chunks = self.chunks(index) if callable(self.chunks) else self.chunks
            for i, chunk in enumerate(chunks):
                if i and self.gap_s:
                    if self.stopping.wait(self.gap_s):
                        return
                conn.sendall(chunk)
            if self.close_early:
                return
            conn.settimeout(0.2)
            deadline = time.monotonic() + self.linger_s
            while time.monotonic() < deadline and not self.stopping.is_set():
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                got += data
        except OSError:
            pass
        finally:
            self.received.append(bytes(got))
            try:
                conn.close()
            except OSError:
                pass

    def close(self) -> None:
        self.stopping.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.acceptor.join(5)
        for thread in self.threads:
            thread.join(5)


def byte_chunks(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


# -- OpenSSH -----------------------------------------------------------------------------------

def make_keys(directory: Path, types=KEY_TYPES) -> dict[str, Path]:
    """Host keys made by ssh-keygen: {type: private key path}."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = {}
    for kind in types:
        path = directory / f"ssh_host_{kind}_key"
        if not path.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "test", "-f",
                            str(path)], check=True, capture_output=True, timeout=60)
        keys[kind] = path
    return keys


def md5_fingerprint(key: Path) -> tuple[int, str]:
    """(bits, colon-less hex MD5 fingerprint) of a key file, as ssh-keygen -l -E md5 says."""
    done = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f", str(key)], check=True,
                          capture_output=True, text=True, timeout=30)
    bits, fingerprint = done.stdout.split()[:2]
    return int(bits), fingerprint.removeprefix("MD5:").replace(":", "")


def sha256_fingerprint(key: Path) -> str:
    done = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(key)], check=True,
                          capture_output=True, text=True, timeout=30)
    return done.stdout.split()[1]


def public_blob(key: Path) -> str:
    """The Base64 key blob of the public half (second field of the .pub file)."""
    return Path(str(key) + ".pub").read_text().split()[1]


class Sshd:
    """/usr/sbin/sshd -D on ``address`` port 22 with the given host keys and extra
    configuration lines; started by start(), waited for, stopped by stop()."""

    def __init__(self, directory: Path, address: str, keys: dict[str, Path],
                 extra: tuple[str, ...] = (), port: int = 22):
        self.directory, self.address, self.port = directory, address, port
        directory.mkdir(parents=True, exist_ok=True)
        self.config = (directory / "sshd_config").resolve()
        lines = [f"ListenAddress {address}", f"Port {port}",
                 *(f"HostKey {Path(path).resolve()}" for path in keys.values()),
                 f"PidFile {(directory / 'sshd.pid').resolve()}", "UsePAM no",
                 "LogLevel ERROR", *extra]
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None
        self.log = directory / "sshd.log"

    def start(self, wait_s: float = 10.0) -> "Sshd":
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        check = subprocess.run([SSHD, "-t", "-f", str(self.config)], capture_output=True,
                               text=True, timeout=30)
        assert check.returncode == 0, f"sshd -t: {check.stderr}"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)],
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"sshd exited: {self.log.read_text()}"
            try:
                with socket.create_connection((self.address, self.port), timeout=1) as probe:
                    probe.settimeout(2)
                    if probe.recv(64).startswith(b"SSH-"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"sshd did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process is None:
            return
        stop_process(self.process)
        self.process = None
