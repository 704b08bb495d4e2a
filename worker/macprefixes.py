"""Hardware addresses: vendor names by prefix, and the source address ``--spoof-mac`` asks for.

The vendor table is Nmap's ``nmap-mac-prefixes`` from the user's data directories (--datadir,
$NMAPDIR, ~/.nmap, the install prefixes), read at run time as Nmap reads it: one
``HEXPREFIX Vendor name`` per line, ``#`` comments. Without the file every vendor is unknown.
"""
from __future__ import annotations

import random
import re

from worker.datadir import DataPath, cached_data

MAC_PREFIXES = "nmap-mac-prefixes"
_HEX = re.compile(r"[0-9A-Fa-f]+")


class SpoofMacError(ValueError):
    """A --spoof-mac argument that is none of the accepted forms (the message says why)."""


class MacPrefixes:
    """Vendor names by hexadecimal prefix (upper case); the longest known prefix wins."""

    def __init__(self, text: str = ""):
        self.vendors: dict[str, str] = {}  # in file order
        for line in text.splitlines():
            line = line.strip()
            if not line or line[0] == "#":
                continue
            prefix, _, vendor = line.partition(" ")
            vendor = vendor.strip()
            if not vendor or not _HEX.fullmatch(prefix):
                continue
            prefix = prefix.upper()
            if prefix not in self.vendors:
                self.vendors[prefix] = vendor
        self._lengths = sorted({len(p) for p in self.vendors}, reverse=True)

    def vendor(self, mac: bytes | str) -> str | None:
        digits = mac.hex().upper() if isinstance(mac, bytes) else mac.replace(":", "").upper()
        for length in self._lengths:
            found = self.vendors.get(digits[:length])
            if found is not None:
                return found
        return None

    def prefix_of_vendor(self, name: str) -> str | None:
        """The first prefix (file order) whose vendor name contains ``name``, any case."""
        wanted = name.lower()
        for prefix, vendor in self.vendors.items():
            if wanted in vendor.lower():
                return prefix
        return None


def load_mac_prefixes(datapath: DataPath) -> MacPrefixes:
    """The vendor table of the first ``nmap-mac-prefixes`` on ``datapath``; empty without one."""
    path = datapath.find(MAC_PREFIXES)
    if path is None:
        return MacPrefixes()
    try:
        return MacPrefixes(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return MacPrefixes()


def mac_prefixes(datadir: str | None = None, environ=None) -> MacPrefixes:
    """The table this process would use for a scan with ``--datadir datadir`` (loaded once)."""
    return cached_data(MAC_PREFIXES, datadir, lambda datapath, _: load_mac_prefixes(datapath),
                       environ)


def format_mac(mac: bytes) -> str:
    """Nmap's spelling: upper-case hex pairs joined by colons."""
    return ":".join(f"{b:02X}" for b in mac)


def parse_mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def spoof_mac(argument: str, prefixes: MacPrefixes, rng: random.Random | None = None) -> bytes:
    """The six bytes ``--spoof-mac ARGUMENT`` stands for (Nmap's documented forms):
    ``0`` a random address; hex digits (colons allowed between pairs) a whole address or a
    prefix whose remaining bytes are random; anything else a vendor name, looked up as a
    case-insensitive substring of the prefix table's names, with random remaining bytes."""
    rng = rng or random.SystemRandom()
    if argument == "0":
        first = rng.randrange(256) & 0xFE  # never a multicast source address
        return bytes([first]) + bytes(rng.randrange(256) for _ in range(5))
    digits = argument.replace(":", "")
    if digits and _HEX.fullmatch(digits) and len(digits) % 2 == 0 and _colons_between_pairs(
            argument):
        if len(digits) > 12:
            raise SpoofMacError(f"Bogus --spoof-mac value encountered ({argument}) -- only up "
                                "to 6 bytes permitted")
        given = bytes.fromhex(digits)
    else:
        prefix = prefixes.prefix_of_vendor(argument) if argument else None
        if prefix is None:
            raise SpoofMacError(
                "Could not parse as a prefix nor find as a vendor substring the given "
                f"--spoof-mac argument: {argument}.  If you are giving hex digits, there must "
                "be an even number of them.")
        given = bytes.fromhex(prefix[:len(prefix) // 2 * 2])
    return given + bytes(rng.randrange(256) for _ in range(6 - len(given)))


def _colons_between_pairs(text: str) -> bool:
    """``02:11:22`` and ``021122`` yes; ``0:1:2`` (single digits) no, as Nmap refuses it."""
    return all(len(part) % 2 == 0 and part for part in text.split(":")) if ":" in text else True


def spoofing_line(mac: bytes, prefixes: MacPrefixes) -> str:
    return (f"Spoofing MAC address {format_mac(mac)} "
            f"({prefixes.vendor(mac) or 'No registered vendor'})")
