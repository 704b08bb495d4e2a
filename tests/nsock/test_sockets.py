"""NsockSocket against real peers on 127.0.0.0/8: echo, banner, silent, partial-then-close,
reset, UDP echo, TLS (a certificate made here with ``cryptography``) and STARTTLS servers.

The peer servers here are also used by tests/nse/test_socket_api.py (loaded by path)."""
from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import struct
import threading
import time
from pathlib import Path

import pytest

from worker.nsock import sockets as nsock
from worker.nsock.loop import EventLoop
from worker.nsock.sockets import CANCELLED, EOF, ERROR, RESOLVE, TIMEOUT, NotConnected, NsockSocket

HOST = "127.0.0.1"


# -- peers -------------------------------------------------------------------------------------

def make_certificate(directory: Path, common_name="localhost", key_type="rsa"):
    """A self-signed certificate and key (PEM files); returns (cert path, key path, DER)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if key_type == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Org"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Unit"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@b.c"),
    ])
    start = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(0x1234ABCD)
               .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=3650))
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False)
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.SubjectAlternativeName([
                   x509.DNSName(common_name),
                   x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
               .add_extension(x509.KeyUsage(
                   digital_signature=True, content_commitment=False, key_encipherment=True,
                   data_encipherment=False, key_agreement=False, key_cert_sign=False,
                   crl_sign=False, encipher_only=False, decipher_only=False), critical=False)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                     ExtendedKeyUsageOID.CLIENT_AUTH]),
                              critical=False))
    cert = builder.sign(key, hashes.SHA256())
    cert_path = directory / f"{common_name}-{key_type}.crt"
    key_path = directory / f"{common_name}-{key_type}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, cert.public_bytes(serialization.Encoding.DER)


class Peers:
    """Servers in threads on 127.0.0.1; every method starts one and returns its port."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.closing: list[socket.socket] = []
        self.sni_seen: list = []
        self._stop = threading.Event()

    def close(self):
        self._stop.set()
        for sock in self.closing:
            try:
                sock.close()
            except OSError:
                pass

    def _thread(self, target, *args):
        threading.Thread(target=target, args=args, daemon=True).start()

    def tcp(self, handler, address=HOST) -> int:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, 0))
        listener.listen(64)
        self.closing.append(listener)

        def accept():
            while not self._stop.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                self.closing.append(conn)
                self._thread(self._serve, handler, conn)

        self._thread(accept)
        return listener.getsockname()[1]

    @staticmethod
    def _serve(handler, conn):
        try:
            handler(conn)
        except (OSError, ssl.SSLError):
            pass

    # handlers
    @staticmethod
    def echo_handler(conn):
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)
        conn.close()

    def echo(self) -> int:
        return self.tcp(self.echo_handler)

    def banner(self, data: bytes, then_close=False, delay_s=0.0) -> int:
        def handler(conn):
            conn.sendall(data)
            if delay_s:
                time.sleep(delay_s)
            if then_close:
                conn.close()
            else:
                self._stop.wait(30)
        return self.tcp(handler)

    def chunks(self, pieces, gap_s=0.05, then_close=True) -> int:
        """Sends ``pieces`` with pauses, then closes (or stays silent)."""
        def handler(conn):
            for piece in pieces:
                conn.sendall(piece)
                time.sleep(gap_s)
            if then_close:
                conn.close()
            else:
                self._stop.wait(30)
        return self.tcp(handler)

    def silent(self) -> int:
        return self.tcp(lambda conn: self._stop.wait(30))

    def reset(self, delay_s=0.1) -> int:
        def handler(conn):
            time.sleep(delay_s)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
        return self.tcp(handler)

    def udp_echo(self) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((HOST, 0))
        self.closing.append(sock)

        def serve():
            while True:
                try:
                    data, peer = sock.recvfrom(65536)
                    sock.sendto(data, peer)
                except OSError:
                    return

        self._thread(serve)
        return sock.getsockname()[1]

    def tls_context(self, key_type="rsa"):
        cert, key, der = make_certificate(self.directory, key_type=key_type)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)

        def sni(ssl_socket, name, ctx):
            self.sni_seen.append(name)
        context.sni_callback = sni
        return context, der

    def tls_echo(self, key_type="rsa"):
        """(port, certificate DER)."""
        context, der = self.tls_context(key_type)

        def handler(conn):
            self.echo_handler(context.wrap_socket(conn, server_side=True))
        return self.tcp(handler), der

    def starttls(self):
        """Plain text: reads a line, answers "OK\\n", then TLS echo. (port, DER)."""
        context, der = self.tls_context()

        def handler(conn):
            data = b""
            while b"\n" not in data:
                chunk = conn.recv(100)
                if not chunk:
                    return
                data += chunk
            conn.sendall(b"OK\n")
            self.echo_handler(context.wrap_socket(conn, server_side=True))
        return self.tcp(handler), der


def closed_port(address=HOST) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def closed_udp_port(address=HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


# -- helpers -----------------------------------------------------------------------------------

@pytest.fixture
def peers(tmp_path):
    owned = Peers(tmp_path)
    yield owned
    owned.close()


@pytest.fixture
def loop():
    owned = EventLoop()
    yield owned
    owned.close()


class Results(list):
    def __call__(self, status, value):
        self.append((status, value))


def wait(loop, results, count=1, limit_s=10.0):
    deadline = time.monotonic() + limit_s
    while len(results) < count:
        assert time.monotonic() < deadline, f"no callback within {limit_s}s: {results}"
        loop.run_once(20)
    return results[count - 1]


def turn(loop, duration_s):
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        loop.run_once(10)


def connected(loop, port, proto="tcp", **kwargs) -> NsockSocket:
    sock = NsockSocket(loop, **kwargs)
    results = Results()
    sock.connect(HOST, port, proto, results)
    assert wait(loop, results) == (None, None)
    return sock


def call(loop, start, *args):
    """Start ``start(*args, callback)``, wait, return (status, value)."""
    results = Results()
    start(*args, results)
    return wait(loop, results)


# -- connect -----------------------------------------------------------------------------------

def test_tcp_connect_send_receive_and_info(loop, peers):
    port = peers.echo()
    sock = connected(loop, port)
    assert sock.is_open and sock.proto == "tcp"
    assert call(loop, sock.send, b"hello") == (None, None)
    assert call(loop, sock.receive) == (None, b"hello")
    local_ip, local_port, remote_ip, remote_port = sock.get_info()
    assert (local_ip, remote_ip, remote_port) == (HOST, HOST, port)
    assert isinstance(local_port, int) and local_port > 0
    sock.close()
    assert not sock.is_open
    with pytest.raises(NotConnected):
        sock.get_info()


def test_refused_connect_is_error_and_the_socket_stays_usable_as_failed(loop):
    port = closed_port()
    sock = NsockSocket(loop)
    assert call(loop, sock.connect, HOST, port, "tcp") == (ERROR, None)
    assert call(loop, sock.receive) == (EOF, None)
    assert call(loop, sock.receive_lines, 1) == (EOF, None)
    assert call(loop, sock.send, b"x") == (ERROR, None)
    info = sock.get_info()
    assert info[0] == HOST and info[2:] == (HOST, port)
    sock.close()


def test_out_of_range_port_is_error(loop):
    sock = NsockSocket(loop)
    assert call(loop, sock.connect, HOST, 70000, "tcp") == (ERROR, None)
    assert call(loop, NsockSocket(loop).connect, HOST, -1, "tcp") == (ERROR, None)


def test_names_resolve_in_a_pool_and_failures_say_why(loop, peers):
    port = peers.echo()
    sock = NsockSocket(loop)
    assert call(loop, sock.connect, "localhost", port, "tcp") == (None, None)
    assert sock.get_info()[2:] == (HOST, port)
    sock.close()
    status, message = call(loop, NsockSocket(loop).connect, "no-such-host.invalid", port, "tcp")
    assert status == RESOLVE and isinstance(message, str) and message


def test_numeric_addresses_never_use_the_resolver_threads(loop, peers, monkeypatch):
    def refuse():
        raise AssertionError("a numeric address went to the resolver pool")
    monkeypatch.setattr(nsock, "_resolver_pool", refuse)
    port = peers.echo()
    sock = connected(loop, port)
    sock.close()
    assert call(loop, NsockSocket(loop).connect, "2130706433", port, "tcp") == (None, None)


def test_nothing_calls_back_inside_the_call(loop, peers):
    port = peers.banner(b"ready\n")
    sock = connected(loop, port)
    turn(loop, 0.1)  # the banner is in the kernel buffer now
    results = Results()
    sock.receive(results)
    assert results == []
    assert wait(loop, results) == (None, b"ready\n")
    sock.close()
    results = Results()
    NsockSocket(loop).connect(HOST, 70000, "tcp", results)
    assert results == []


def test_reconnect_closes_the_old_connection(loop, peers):
    first, second = peers.banner(b"one"), peers.banner(b"two")
    sock = connected(loop, first)
    assert call(loop, sock.connect, HOST, second, "tcp") == (None, None)
    assert call(loop, sock.receive) == (None, b"two")
    sock.close()


def test_bind_sets_the_local_address(loop, peers):
    port = peers.echo()
    sock = NsockSocket(loop)
    assert sock.bind("127.0.0.2", 0) is None
    assert call(loop, sock.connect, HOST, port, "tcp") == (None, None)
    assert sock.get_info()[0] == "127.0.0.2"
    sock.close()
    assert NsockSocket(loop).bind("localhost", 0) == "Name or service not known"
    assert NsockSocket(loop).bind(None, 0) is None
    # an address of the other family is ignored at connect time, as Nmap does
    other = NsockSocket(loop)
    assert other.bind("::1", 0) is None
    assert call(loop, other.connect, HOST, port, "tcp") == (None, None)
    other.close()


# -- reading -----------------------------------------------------------------------------------

def test_receive_returns_what_has_arrived_in_one_piece(loop, peers):
    """As Nmap's: a burst larger than one kernel read comes back whole (up to a limit)."""
    burst = bytes(range(256)) * (nsock.CHUNK * 12 // 256)
    port = peers.banner(burst, then_close=False)
    sock = connected(loop, port)
    turn(loop, 0.2)
    assert call(loop, sock.receive) == (None, burst)
    sock.close()


def test_receive_lines_and_bytes_accumulate_across_reads(loop, peers):
    port = peers.chunks([b"a\nb", b"c\n", b"d\ne\n"], then_close=False)
    sock = connected(loop, port)
    assert call(loop, sock.receive_lines, 2) == (None, b"a\nbc\n")
    assert call(loop, sock.receive_bytes, 4) == (None, b"d\ne\n")
    sock.close()


def test_receive_lines_zero_returns_the_first_data(loop, peers):
    port = peers.banner(b"x\ny\n")
    sock = connected(loop, port)
    assert call(loop, sock.receive_lines, 0) == (None, b"x\ny\n")
    sock.close()


@pytest.mark.parametrize("method, n", [("receive_lines", 5), ("receive_bytes", 100)])
def test_partial_data_then_eof_succeeds_in_nmap7(loop, peers, method, n):
    port = peers.banner(b"line1\npart", then_close=True, delay_s=0.1)
    sock = connected(loop, port, partial_reads_succeed=True)
    assert call(loop, getattr(sock, method), n) == (None, b"line1\npart")
    assert call(loop, sock.receive_lines, 1) == (EOF, None)
    assert call(loop, sock.receive) == (EOF, None)
    sock.close()


@pytest.mark.parametrize("method, n", [("receive_lines", 5), ("receive_bytes", 100)])
def test_partial_data_then_eof_fails_in_the_seed_and_keeps_the_data(loop, peers, method, n):
    port = peers.banner(b"line1\npart", then_close=True, delay_s=0.1)
    sock = connected(loop, port, partial_reads_succeed=False)
    assert call(loop, getattr(sock, method), n) == (EOF, None)
    assert call(loop, sock.receive) == (None, b"line1\npart")
    assert call(loop, sock.receive) == (EOF, None)
    sock.close()


def test_partial_data_then_timeout_per_profile(loop, peers):
    port = peers.banner(b"no newline")
    sock = connected(loop, port, partial_reads_succeed=True)
    sock.timeout_ms = 200
    assert call(loop, sock.receive_lines, 1) == (None, b"no newline")
    sock.close()
    seed = connected(loop, port, partial_reads_succeed=False)
    seed.timeout_ms = 200
    assert call(loop, seed.receive_lines, 1) == (TIMEOUT, None)
    assert call(loop, seed.receive_bytes, 3) == (None, b"no newline")
    seed.close()


def test_timeouts(loop, peers):
    port = peers.silent()
    sock = connected(loop, port, timeout_ms=150)
    started = time.monotonic()
    assert call(loop, sock.receive) == (TIMEOUT, None)
    assert 0.1 <= time.monotonic() - started < 2
    sock.timeout_ms = 0
    started = time.monotonic()
    assert call(loop, sock.receive) == (TIMEOUT, None)
    assert time.monotonic() - started < 0.5
    sock.timeout_ms = -1  # none: nothing fires
    results = Results()
    op = sock.receive(results)
    turn(loop, 0.3)
    assert results == []
    op.cancel()
    # a per-call timeout overrides the socket's
    assert call(loop, lambda cb: sock.receive(cb, timeout_ms=50)) == (TIMEOUT, None)
    sock.close()


def test_a_zero_timeout_still_lets_a_loopback_connect_succeed(loop, peers):
    """As in nsock, I/O that completes in a turn beats a timer due in that turn: the
    connect's timer starts with the attempt, not before the loop gets to it."""
    port = peers.echo()
    for host in (HOST, "localhost"):  # a name is resolved first, outside the timeout
        sock = NsockSocket(loop, timeout_ms=0)
        assert call(loop, sock.connect, host, port, "tcp") == (None, None)
        sock.close()
    refused = NsockSocket(loop, timeout_ms=0)
    assert call(loop, refused.connect, HOST, closed_port(), "tcp") == (ERROR, None)


def test_reset_is_error(loop, peers):
    port = peers.reset()
    sock = connected(loop, port)
    assert call(loop, sock.receive) == (ERROR, None)
    sock.close()


def test_peer_close_is_eof(loop, peers):
    port = peers.banner(b"", then_close=True)
    sock = connected(loop, port)
    assert call(loop, sock.receive) == (EOF, None)
    assert call(loop, sock.receive_bytes, 1) == (EOF, None)
    sock.close()


def test_large_send_is_written_completely(loop, peers):
    port = peers.echo()
    sock = connected(loop, port)
    payload = bytes(range(256)) * 8192  # 2 MiB: several partial writes
    results = Results()
    sock.send(payload, results)
    reads = Results()
    sock.receive_bytes(len(payload), reads)
    wait(loop, results)
    assert results[0] == (None, None)
    status, data = wait(loop, reads)
    assert status is None and data == payload
    sock.close()


# -- cancelling and closing --------------------------------------------------------------------

def test_cancelled_operation_never_calls_back_and_loses_no_data(loop, peers):
    port = peers.chunks([b"first"], gap_s=0.2, then_close=False)
    sock = connected(loop, port)
    results = Results()
    op = sock.receive(results)
    op.cancel()
    turn(loop, 0.4)
    assert results == []
    assert call(loop, sock.receive) == (None, b"first")
    sock.close()


def test_read_done_at_once_then_cancelled_keeps_its_data(loop, peers):
    port = peers.banner(b"ready\n")
    sock = connected(loop, port)
    turn(loop, 0.1)  # the banner is in the kernel buffer: the read completes inside the call
    results = Results()
    sock.receive(results).cancel()
    turn(loop, 0.1)
    assert results == []
    assert call(loop, sock.receive) == (None, b"ready\n")
    sock.close()


def test_connect_and_read_batch_epoll_changes(loop, peers):
    """A connected socket that starts reading in the same turn changes its epoll
    registration once; one closed in the turn it stops waiting is never touched again."""
    port = peers.chunks([b"later"], gap_s=0.2, then_close=False)
    sock = NsockSocket(loop)
    results = Results()
    sock.connect(HOST, port, "tcp", results)
    assert loop._changed  # the first registration waits for the loop to turn
    wait(loop, results)
    assert sock._fd in loop._registered
    results = Results()
    sock.receive(results)
    assert wait(loop, results) == (None, b"later")
    fd = sock._fd
    sock.close()
    assert fd not in loop._registered and fd not in loop._changed


def test_cancelled_timer_does_not_fire(loop, peers):
    sock = connected(loop, peers.silent(), timeout_ms=50)
    results = Results()
    sock.receive(results).cancel()
    turn(loop, 0.2)
    assert results == []
    sock.close()


def test_close_cancels_pending_operations(loop, peers):
    sock = connected(loop, peers.silent())
    results = Results()
    sock.receive(results)
    sock.close()
    assert results == []
    assert wait(loop, results) == (CANCELLED, None)
    assert loop.watched_count() == 0


def test_cancelled_connect_never_calls_back(loop, peers):
    sock = NsockSocket(loop)
    results = Results()
    sock.connect("localhost", peers.echo(), "tcp", results).cancel()
    turn(loop, 0.3)
    assert results == []
    sock.close()


def test_abort_reports_kill(loop, peers):
    sock = connected(loop, peers.silent())
    results = Results()
    sock.receive(results)
    sock.abort()
    assert wait(loop, results) == ("KILL", None)


# -- UDP ---------------------------------------------------------------------------------------

def test_udp_connected_one_datagram_per_receive(loop, peers):
    port = peers.udp_echo()
    sock = connected(loop, port, proto="udp")
    assert sock.proto == "udp"
    assert call(loop, sock.send, b"ab") == (None, None)
    assert call(loop, sock.send, b"cd") == (None, None)
    turn(loop, 0.1)
    assert call(loop, sock.receive) == (None, b"ab")
    assert call(loop, sock.receive) == (None, b"cd")
    sock.send(b"x\n", Results())
    sock.send(b"y\n", Results())
    assert call(loop, sock.receive_lines, 2) == (None, b"x\ny\n")
    assert sock.get_info()[2:] == (HOST, port)
    sock.close()


def test_udp_to_a_closed_port_errors_on_receive(loop):
    sock = connected(loop, closed_udp_port(), proto="udp", timeout_ms=2000)
    assert call(loop, sock.send, b"hi") == (None, None)
    assert call(loop, sock.receive) == (ERROR, None)
    sock.close()


def test_udp_connect_never_times_out(loop):
    sock = NsockSocket(loop, timeout_ms=0)
    assert call(loop, sock.connect, HOST, closed_udp_port(), "udp") == (None, None)
    sock.close()


def test_unconnected_udp_sendto_receive_and_info(loop, peers):
    port = peers.udp_echo()
    sock = NsockSocket(loop, timeout_ms=2000)
    sock.setup_udp()
    assert sock.get_info() == ("unknown protocol", 0, "unknown protocol", 0)
    assert call(loop, sock.send, b"nowhere") == (ERROR, None)
    assert call(loop, sock.sendto, HOST, port, b"ping") == (None, None)
    assert call(loop, sock.receive) == (None, b"ping")
    local_ip, local_port, remote_ip, remote_port = sock.get_info()
    assert (local_ip, remote_ip, remote_port) == ("0.0.0.0", HOST, port) and local_port > 0
    status, message = call(loop, sock.sendto, "no-such-host.invalid", port, b"x")
    assert status == RESOLVE and message
    sock.close()


def test_sendto_sets_up_a_new_socket_and_binds(loop, peers):
    port = peers.udp_echo()
    sock = NsockSocket(loop, timeout_ms=2000)
    assert sock.bind("127.0.0.3", 0) is None
    assert call(loop, sock.sendto, HOST, port, b"hi") == (None, None)
    assert sock.get_info()[0] == "127.0.0.3"
    assert call(loop, sock.receive) == (None, b"hi")
    sock.close()


# -- TLS ---------------------------------------------------------------------------------------

def test_tls_connect_echo_certificate_and_sni(loop, peers):
    port, der = peers.tls_echo()
    sock = NsockSocket(loop)
    assert call(loop, lambda cb: sock.connect(HOST, port, "ssl", cb,
                                              server_hostname="example.test")) == (None, None)
    assert sock.is_ssl and sock.proto == "tcp"
    assert sock.peer_certificate_der() == der
    assert call(loop, sock.send, b"secret") == (None, None)
    assert call(loop, sock.receive_bytes, 6) == (None, b"secret")
    assert sock.get_info()[2:] == (HOST, port)
    sock.close()
    assert "example.test" in peers.sni_seen
    # an IP address is not sent as SNI
    before = len(peers.sni_seen)
    plain = NsockSocket(loop)
    assert call(loop, plain.connect, HOST, port, "ssl") == (None, None)
    plain.close()
    assert peers.sni_seen[before:] in ([], [None])


def test_tls_session_is_offered_again(loop, peers):
    port, _ = peers.tls_echo()
    sock = NsockSocket(loop)
    assert call(loop, sock.connect, HOST, port, "ssl") == (None, None)
    assert call(loop, sock.send, b"x") == (None, None)
    assert call(loop, sock.receive) == (None, b"x")  # TLS 1.3 tickets arrive after the handshake
    session = sock.ssl_session
    sock.close()
    again = NsockSocket(loop)
    again.ssl_session = session
    assert call(loop, again.connect, HOST, port, "ssl") == (None, None)
    again.close()


def test_tls_many_records_and_buffered_plaintext(loop, peers):
    port, _ = peers.tls_echo()
    sock = NsockSocket(loop)
    assert call(loop, sock.connect, HOST, port, "ssl") == (None, None)
    payload = b"".join(b"%06d\n" % i for i in range(50000))
    sock.send(payload, Results())
    assert call(loop, sock.receive_lines, 50000) == (None, payload)
    sock.close()


def test_tls_to_a_plain_server_is_error(loop, peers):
    sock = NsockSocket(loop)
    assert call(loop, sock.connect, HOST, peers.echo(), "ssl") == (ERROR, None)
    sock.close()


def test_tls_handshake_counts_in_the_connect_timeout(loop, peers):
    sock = NsockSocket(loop, timeout_ms=200)
    started = time.monotonic()
    assert call(loop, sock.connect, HOST, peers.silent(), "ssl") == (TIMEOUT, None)
    assert time.monotonic() - started < 2
    sock.close()


def test_reconnect_ssl_starts_tls_on_a_plain_connection(loop, peers):
    port, der = peers.starttls()
    sock = connected(loop, port)
    assert sock.peer_certificate_der() is None
    assert call(loop, sock.send, b"STARTTLS\n") == (None, None)
    assert call(loop, sock.receive_lines, 1) == (None, b"OK\n")
    assert call(loop, sock.reconnect_ssl) == (None, None)
    assert sock.is_ssl and sock.peer_certificate_der() == der
    assert call(loop, sock.send, b"inside") == (None, None)
    assert call(loop, sock.receive_bytes, 6) == (None, b"inside")
    assert call(loop, sock.reconnect_ssl) == (None, None)  # already TLS
    sock.close()
    with pytest.raises(NotConnected):
        sock.reconnect_ssl(Results())


def test_reconnect_ssl_on_udp_is_error(loop, peers):
    sock = connected(loop, peers.udp_echo(), proto="udp")
    assert call(loop, sock.reconnect_ssl) == (ERROR, None)
    sock.close()


def test_ec_certificates_work(loop, peers):
    port, der = peers.tls_echo(key_type="ec")
    sock = NsockSocket(loop)
    assert call(loop, sock.connect, HOST, port, "ssl") == (None, None)
    assert sock.peer_certificate_der() == der
    sock.close()
