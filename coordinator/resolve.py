"""Forward name resolution for target names: the coordinator's only network-facing code.

Nmap resolves target names with the system resolver when it reads them; so do we. Reverse DNS
of scanned hosts is the workers' job (worker.dns).
"""
from __future__ import annotations


def make_name_resolver(family: int = 4):
    """A ``resolve(name) -> [addresses]`` for the target parser; raises LookupError."""

    def resolve(name: str) -> list[str]:
        import socket  # scans of addresses only never load it

        af = socket.AF_INET6 if family == 6 else socket.AF_INET
        try:
            infos = socket.getaddrinfo(name, None, af, socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError, OSError) as exc:
            raise LookupError(str(exc)) from None
        addresses: list[str] = []
        for info in infos:
            address = info[4][0]
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise LookupError(f"no {'IPv6' if family == 6 else 'IPv4'} address")
        return addresses

    return resolve
