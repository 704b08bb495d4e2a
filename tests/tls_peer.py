"""TLS servers for the tests, with certificates generated here (``cryptography``).

``make_certificate(directory, name, key="rsa", san=True, expired=False)`` writes a
self-signed certificate and key and returns (cert path, key path, DER bytes).
``TlsPeer("127.0.0.47", cert, key)`` listens (port 443 by default), completes the TLS
handshake of each connection, answers one HTTP-like line and closes. ``server_context``
gives the same certificate to the STARTTLS of tests/ftp_peer.py and tests/smtp_peer.py.
``close()`` stops everything; all waits are bounded.
"""
from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from pathlib import Path

from tcp_peer import TcpServer


def make_certificate(directory: Path, name: str, key: str = "rsa", bits: int = 2048,
                     san: bool = True, expired: bool = False, issuer_cn: str | None = None,
                     serial: int = 0x5A17C0DE):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    if key == "ec":
        private = ec.generate_private_key(ec.SECP256R1())
    elif key == "ec384":
        private = ec.generate_private_key(ec.SECP384R1())
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Org"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "California"),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.LOCALITY_NAME, "Springfield"),
    ])
    issuer = subject if issuer_cn is None else x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test CA Inc"),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
    ])
    if expired:
        start = datetime.datetime(2015, 3, 4, 5, 6, 7, tzinfo=datetime.timezone.utc)
        end = datetime.datetime(2016, 3, 4, 5, 6, 7, tzinfo=datetime.timezone.utc)
    else:
        start = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        end = datetime.datetime(2044, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(private.public_key()).serial_number(serial)
               .not_valid_before(start).not_valid_after(end))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName(name), x509.DNSName("www." + name),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    certificate = builder.sign(private, hashes.SHA256())
    cert_path = directory / f"{name}-{key}.crt"
    key_path = directory / f"{name}-{key}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    return cert_path, key_path, certificate.public_bytes(serialization.Encoding.DER)


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # small test keys are fine here
    context.load_cert_chain(cert, key)
    return context


class TlsPeer(TcpServer):
    def __init__(self, address: str, cert: Path, key: Path, port: int = 443):
        self.context = server_context(cert, key)
        super().__init__(address, port, self._serve)

    def _serve(self, sock: socket.socket):
        sock.settimeout(10)
        tls = self.own(self.context.wrap_socket(sock, server_side=True))
        try:
            tls.recv(4096)
        except OSError:  # ssl.SSLError included
            pass
        tls.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        tls.close()
