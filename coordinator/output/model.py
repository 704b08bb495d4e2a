"""What output writers receive besides host results: the scan's header and closing figures."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ScanInfo:
    command_line: str  # the whole command as typed, for headers and XML args
    start_time: float  # epoch seconds
    scan_type: str  # "connect", "syn", "udp" (-sU alone), or "none" for a ping-only scan (-sn)
    tcp_ranges: tuple[tuple[int, int], ...]  # scanned TCP ports, merged ranges
    udp_ranges: tuple[tuple[int, int], ...] = ()
    udp_scan: bool = False  # -sU, even when no UDP port was left to scan
    # Effective levels, as Nmap reports them in XML: each -d also raises verbosity by one
    # (-d gives verbosity 1, -dd 2, -d -v 2).
    verbosity: int = 0
    debugging: int = 0
    show_reason: bool = False  # --reason
    open_only: bool = False  # --open
    version: str = "0.1.0"
    # Added by the output module:
    version_scan: bool = False  # -sV ran: VERSION column, "name?" guesses, closing note
    script_scan: bool = False  # NSE ran (-sC/--script): host blocks are timed even with -sn


@dataclass(frozen=True, slots=True)
class RunStats:
    end_time: float  # epoch seconds
    elapsed_s: float
    hosts_total: int
    hosts_up: int
    hosts_down: int
    interrupted: bool = False  # Ctrl-C: outputs close cleanly with what finished
    error: str | None = None  # a fatal error's one line, if the scan stopped on one
