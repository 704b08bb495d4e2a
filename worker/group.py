"""One host group, start to finish: discovery, reverse DNS, port scan, results.

This is the worker's unit of work, the same in the embedded default and in a Celery task.
Reverse DNS runs on the loop beside the port scan, so names cost no extra wall time.
"""
from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Callable

from worker.nsock.loop import EventLoop, process_loop
from worker.protocol import (
    GroupJob,
    GroupResult,
    HostResult,
    PortResult,
    PortRun,
    Target,
    merge_ranges,
    scans_ports,
    shown_ports_limit,
)
from worker.scan.connect import ConnectProber, fd_budget
from worker.scan.ultra import HostScan, UltraScan
from worker.services import TableGuesses, service_table_for

ProgressCallback = Callable[[int, int], None]  # (units done, units in all) of the current phase
_PROGRESS_EVERY_MS = 250
# States scripts run on (nse-spec §4.4); always reported port by port.
INTERESTING = ("open", "open|filtered", "unfiltered")


def run_group(job: GroupJob, loop: EventLoop | None = None,
              on_progress: ProgressCallback | None = None, log=None) -> GroupResult:
    """Scan ``job``'s hosts. On KeyboardInterrupt, returns the hosts that finished, marked
    ``interrupted``; the caller decides whether to stop."""
    return _GroupRun(job, loop or process_loop(), on_progress, log).run()


def scrambled(ports: list[int]) -> list[int]:
    """The ports in a random order, as Nmap scans them unless -r. A random affine permutation
    (i -> a*i + b mod n, a coprime with n): as unpredictable as a scan order needs to be, and
    cheap for 65,535 ports, unlike a full shuffle."""
    n = len(ports)
    if n < 3:
        return random.sample(ports, n)
    a = random.randrange(1, n)
    while math.gcd(a, n) != 1:
        a = random.randrange(1, n)
    b = random.randrange(n)
    return [ports[(a * i + b) % n] for i in range(n)]


class _GroupRun:
    def __init__(self, job: GroupJob, loop: EventLoop, on_progress: ProgressCallback | None,
                 log=None):
        self.job = job
        self.log = log
        self.options = job.options
        self.loop = loop
        self.on_progress = on_progress
        self.start_time = time.time()
        self.start_ms = loop.now_ms()
        # Each address is probed once; a target given twice is still reported (and gets its
        # scripts) twice, as in Nmap, each with the name it was given.
        self.targets = {t.address: t for t in job.targets}
        self.names: dict[str, str | None] = {}
        self.discovery: dict[str, HostScan] = {}
        self.raw_ping = None  # RawPing: reasons, TTLs and MACs of privileged discovery
        self.portscan: dict[str, HostScan] = {}  # TCP
        self.udpscan: dict[str, HostScan] = {}
        self.resolver = None
        self.current: UltraScan | None = None
        self._progress_timer = None

    def run(self) -> GroupResult:
        interrupted = False
        try:
            if self.on_progress is not None:
                self._progress_timer = self.loop.call_later(_PROGRESS_EVERY_MS, self._report)
            up = self._discover()
            self._start_reverse_dns(up)
            self._scan_ports(up)
            if self.resolver is not None:
                self.loop.run_until(lambda: self.resolver.idle)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if self.resolver is not None:
                self.resolver.close()
            if self._progress_timer is not None:
                self._progress_timer.cancel()
        hosts = self._results(finished_only=interrupted)
        names = TableGuesses(service_table_for(self.options.datadir))
        for host in hosts:
            names.name_ports(host)
        if not interrupted and self.options.version is not None:
            interrupted = self._version_scan(hosts)
        new_targets = []
        if not interrupted and self.options.scripts is not None:
            interrupted, new_targets = self._script_scan(hosts)
        return GroupResult(self.job.scan_id, self.job.group_index, hosts, interrupted,
                           new_targets)

    def _version_scan(self, hosts: list[HostResult]) -> bool:
        """-sV over the finished hosts' open ports (after the port scan, before scripts)."""
        from worker.scan.version import detect_versions

        try:
            detect_versions(self.loop, hosts, self.options, self.log)
        except KeyboardInterrupt:
            return True
        return False

    def _script_scan(self, hosts: list[HostResult]) -> tuple[bool, list[str]]:
        """hostrule and portrule scripts over the finished hosts (nse-spec §4.1 phase 2)."""
        from worker.nse.stage import stage_for  # Lua loads only for scans with scripts

        stage = stage_for(self.job.scan_id, self.options, self.loop, self.log)
        try:
            stage.scan(hosts)
        except KeyboardInterrupt:
            return True, stage.take_new_targets()
        return False, stage.take_new_targets()

    # -- phases -----------------------------------------------------------------------------
    def _discover(self) -> list[str]:
        addresses = list(self.targets)
        raw = self._raw_discovery(addresses)
        raw_up = set(raw.up) if raw is not None else set()  # a property: read it once
        if not self.options.host_discovery:
            if raw is None:
                return addresses
            return [a for a in addresses if a not in raw.scanned or a in raw_up]
        if raw is not None:
            addresses = [a for a in addresses if a not in raw.scanned]
            if not addresses:
                return raw.up
        scan = UltraScan(((a, self.options.discovery_ports) for a in addresses),
                         self.options.timing, self.loop.now_ms(), discovery=True,
                         fd_budget=fd_budget())
        self.discovery.update({h.key: h for h in scan.hosts})
        self._drive(scan)
        up = [h.key for h in scan.hosts if h.up and not h.timed_out]
        if raw is None:
            return up
        up_set = set(up)
        return [a for a in self.targets if a in raw_up or a in up_set]

    def _raw_discovery(self, addresses: list[str]):
        """Privileged discovery of the IPv4 targets (worker/scan/ping.py), or None when this
        process may not send raw packets. With -Pn it still ARPs the directly connected hosts
        of a raw port scan, as Nmap must to address their frames."""
        from worker.scan.ping import RawPing, raw_ping_wanted

        if not raw_ping_wanted(self.options):
            return None
        self.raw_ping = RawPing(self.options, self.loop, addresses)
        self.current = self.raw_ping.scan
        try:
            self.raw_ping.run()
        finally:
            self.current = None
        self.discovery.update({h.key: h for h in self.raw_ping.scan.hosts})
        return self.raw_ping

    def _start_reverse_dns(self, up: list[str]) -> None:
        mode = self.options.reverse_dns
        if mode == "never":
            return
        addresses = list(self.targets) if mode == "always" else up
        if not addresses:
            return
        from worker.dns import make_resolver  # only scans that resolve names pay for it

        self.resolver = make_resolver(self.loop, self.options.dns_servers,
                                      self.options.system_dns, self._on_name)
        self.resolver.lookup(addresses)

    def _on_name(self, address: str, name: str | None) -> None:
        self.names[address] = name

    def _scan_ports(self, up: list[str]) -> None:
        if not up:
            return
        if self.options.scan_type == "syn":  # raw SYN probes are IPv4; IPv6 hosts connect
            from worker.scan.syn import SynProber
            self._scan_ports_with([a for a in up if ":" not in a], SynProber)
            self._scan_ports_with([a for a in up if ":" in a], ConnectProber)
        elif self.options.scan_type == "connect":
            self._scan_ports_with(up, ConnectProber)
        if self.options.udp_scan:  # after TCP, as Nmap does; not a host past --host-timeout
            from worker.scan.udp import Udp6Prober, UdpProber
            up = [a for a in up if not self._tcp_timed_out(a)]
            self._scan_udp_ports([a for a in up if ":" not in a], UdpProber)
            self._scan_udp_ports([a for a in up if ":" in a], Udp6Prober)

    def _scan_udp_ports(self, up: list[str], prober) -> None:
        if not up:
            return
        from worker.scan.udp import SILENCE

        udp_ports = list(self.options.ports.ports("udp"))
        scan = UltraScan(((a, scrambled(udp_ports) if self.options.randomize_ports
                           else udp_ports) for a in up),
                         self.options.timing, self.loop.now_ms(), fd_budget=fd_budget(),
                         silence=SILENCE, answers_rate_limited=True)
        self.udpscan.update({h.key: h for h in scan.hosts})
        self._drive(scan, functools.partial(prober, datadir=self.options.datadir))

    def _scan_ports_with(self, up: list[str], prober) -> None:
        if not up:
            return
        tcp_ports = list(self.options.ports.ports("tcp"))
        scanned = set(tcp_ports)
        # Discovery's connect to 80 or 443 already told that port's state: keep the answer
        # rather than ask the same question again.
        known = {}
        for address in up:
            ping = self.discovery.get(address)
            if ping is not None:
                known[address] = {port: outcome for port, outcome in ping.results.items()
                                  if port in scanned and outcome[0] in ("open", "closed")}

        def port_order(address):
            answered = known.get(address)
            ports = [p for p in tcp_ports if p not in answered] if answered else tcp_ports
            return scrambled(ports) if self.options.randomize_ports else ports

        scan = UltraScan(((a, port_order(a)) for a in up), self.options.timing,
                         self.loop.now_ms(), fd_budget=fd_budget())
        for host in scan.hosts:
            host.results.update(known.get(host.key, {}))
        self.portscan.update({h.key: h for h in scan.hosts})
        self._drive(scan, prober)

    def _drive(self, scan: UltraScan, prober=ConnectProber) -> None:
        self.current = scan
        prober(self.loop, scan).run()  # host keys are the addresses
        self.current = None

    def _report(self) -> None:
        if self.current is not None:
            self.on_progress(*self.current.progress())
        self._progress_timer = self.loop.call_later(_PROGRESS_EVERY_MS, self._report)

    # -- results ----------------------------------------------------------------------------
    def _results(self, finished_only: bool) -> list[HostResult]:
        results = []
        for target in self.job.targets:
            finished_ms = self._finished_ms(target.address)
            if finished_ms is None and finished_only:
                continue
            results.append(self._host_result(target, finished_ms))
        return results

    def _finished_ms(self, address: str) -> float | None:
        """When this host's last phase ended; None while it is still being scanned."""
        ping = self.discovery.get(address)
        if ping is not None and (not ping.done or not ping.up or ping.timed_out):
            return ping.finished_ms
        if scans_ports(self.options):
            scans = self._port_scans(address)
            if not all(scan is not None and scan.done for scan in scans):
                return None
            return max(scan.finished_ms for scan in scans)
        return ping.finished_ms if ping is not None else self.start_ms

    def _port_scans(self, address: str) -> list[HostScan | None]:
        """This host's port scans (TCP, UDP) that the scan runs; None for one not begun."""
        scans = []
        if self.options.scan_type != "none":
            scans.append(self.portscan.get(address))
        if self.options.udp_scan and not self._tcp_timed_out(address):
            scans.append(self.udpscan.get(address))
        return scans

    def _tcp_timed_out(self, address: str) -> bool:
        tcp = self.portscan.get(address)
        return tcp is not None and tcp.timed_out

    def _host_result(self, target: Target, finished_ms: float | None) -> HostResult:
        address = target.address
        ping = self.discovery.get(address)
        scans = {protocol: scan for protocol, scan in (("tcp", self.portscan.get(address)),
                                                       ("udp", self.udpscan.get(address)))
                 if scan is not None}
        if finished_ms is None:
            finished_ms = self.loop.now_ms()
        host = HostResult(address=address, targetname=target.targetname,
                          other_addresses=list(target.other_addresses),
                          start_time=self.start_time,
                          end_time=self.start_time + (finished_ms - self.start_ms) / 1000.0)
        if target.targetname:
            host.hostnames.append((target.targetname, "user"))
        name = self.names.get(address)
        if name:
            host.hostnames.append((name, "PTR"))
        if ping is not None and not ping.up:
            host.status = "down"
            host.reason = "no-response"
            host.timed_out = ping.timed_out
            return host
        if ping is not None:
            host.reason = ping.up_reason or "unknown-response"
        if self.raw_ping is not None:
            self.raw_ping.describe(host)
        # The times reported: the first port scan's (TCP, UDP) that has an RTT, else discovery's.
        timing_source = next((s for s in (*scans.values(), ping)
                              if s is not None and s.rtt.srtt_us is not None), None)
        if timing_source is not None:
            host.srtt_us = int(timing_source.rtt.srtt_us)
            host.rttvar_us = int(timing_source.rtt.rttvar_us)
            host.timeout_us = int(timing_source.rtt.timeout_ms(self.options.timing) * 1000)
        if scans:
            host.timed_out = any(s.timed_out for s in scans.values())
            host.ports, host.port_runs = self._port_report(scans)
        return host

    def _port_report(self, scans: dict[str, HostScan]):
        """Ports one by one, except states too big for any report to list (as runs); the
        limit counts a state's ports of every protocol together, as Nmap does."""
        by_outcome: dict[tuple[str, str, str, int], list[int]] = {}
        for protocol, scan in scans.items():
            ttls = scan.reason_ttls
            for port, (state, reason) in scan.results.items():
                key = (protocol, state, reason, ttls.get(port, 0) if ttls else 0)
                ports = by_outcome.get(key)
                if ports is None:
                    by_outcome[key] = [port]
                else:
                    ports.append(port)
        for ports in by_outcome.values():
            ports.sort()
        state_counts: dict[str, int] = {}
        for (_, state, _, _), numbers in by_outcome.items():
            state_counts[state] = state_counts.get(state, 0) + len(numbers)
        limit = shown_ports_limit(self.options.verbosity, self.options.debugging)
        singles: list[PortResult] = []
        runs: list[PortRun] = []
        for (protocol, state, reason, ttl), numbers in by_outcome.items():
            if limit is not None and state_counts[state] > limit and state not in INTERESTING:
                runs.append(PortRun(protocol, state, reason, ttl, merge_ranges(numbers)))
            else:
                singles.extend(PortResult(protocol, port, state, reason, ttl)
                               for port in numbers)
        singles.sort(key=lambda p: (p.protocol != "tcp", p.portid))
        return singles, runs
