"""One host group, start to finish: discovery, reverse DNS, port scan, results.

This is the worker's unit of work, the same in the embedded default and in a Celery task.
Reverse DNS runs on the loop beside the port scan, so names cost no extra wall time.
"""
from __future__ import annotations

import random
import time
from typing import Callable

from worker.dns import make_resolver
from worker.nsock.loop import EventLoop, process_loop
from worker.protocol import GroupJob, GroupResult, HostResult, PortResult, Target
from worker.scan.connect import ConnectProber, fd_budget
from worker.scan.ultra import HostScan, UltraScan

ProgressCallback = Callable[[int, int], None]  # (units done, units in all) of the current phase
_PROGRESS_EVERY_MS = 250


def run_group(job: GroupJob, loop: EventLoop | None = None,
              on_progress: ProgressCallback | None = None) -> GroupResult:
    """Scan ``job``'s hosts. On KeyboardInterrupt, returns the hosts that finished, marked
    ``interrupted``; the caller decides whether to stop."""
    return _GroupRun(job, loop or process_loop(), on_progress).run()


class _GroupRun:
    def __init__(self, job: GroupJob, loop: EventLoop, on_progress: ProgressCallback | None):
        self.job = job
        self.options = job.options
        self.loop = loop
        self.on_progress = on_progress
        self.start_time = time.time()
        self.start_ms = loop.now_ms()
        self.targets = {t.address: t for t in job.targets}  # duplicates scan once per group
        self.names: dict[str, str | None] = {}
        self.discovery: dict[str, HostScan] = {}
        self.portscan: dict[str, HostScan] = {}
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
        return GroupResult(self.job.scan_id, self.job.group_index,
                           self._results(finished_only=interrupted), interrupted)

    # -- phases -----------------------------------------------------------------------------
    def _discover(self) -> list[str]:
        addresses = list(self.targets)
        if not self.options.host_discovery:
            return addresses
        scan = UltraScan(((a, self.options.discovery_ports) for a in addresses),
                         self.options.timing, self.loop.now_ms(), discovery=True,
                         fd_budget=fd_budget())
        self.discovery = {h.key: h for h in scan.hosts}
        self._drive(scan)
        return [h.key for h in scan.hosts if h.up and not h.timed_out]

    def _start_reverse_dns(self, up: list[str]) -> None:
        mode = self.options.reverse_dns
        if mode == "never":
            return
        addresses = list(self.targets) if mode == "always" else up
        if not addresses:
            return
        self.resolver = make_resolver(self.loop, self.options.dns_servers,
                                      self.options.system_dns, self._on_name)
        self.resolver.lookup(addresses)

    def _on_name(self, address: str, name: str | None) -> None:
        self.names[address] = name

    def _scan_ports(self, up: list[str]) -> None:
        if self.options.scan_type != "connect" or not up:
            return
        tcp_ports = list(self.options.ports.ports("tcp"))

        def port_order():
            if not self.options.randomize_ports:
                return tcp_ports
            shuffled = tcp_ports[:]
            random.shuffle(shuffled)
            return shuffled

        scan = UltraScan(((a, port_order()) for a in up), self.options.timing,
                         self.loop.now_ms(), fd_budget=fd_budget())
        self.portscan = {h.key: h for h in scan.hosts}
        self._drive(scan)

    def _drive(self, scan: UltraScan) -> None:
        self.current = scan
        ConnectProber(self.loop, scan, lambda address: address).run()
        self.current = None

    def _report(self) -> None:
        if self.current is not None:
            self.on_progress(*self.current.progress())
        self._progress_timer = self.loop.call_later(_PROGRESS_EVERY_MS, self._report)

    # -- results ----------------------------------------------------------------------------
    def _results(self, finished_only: bool) -> list[HostResult]:
        results = []
        for address, target in self.targets.items():
            finished_ms = self._finished_ms(address)
            if finished_ms is None and finished_only:
                continue
            results.append(self._host_result(target, finished_ms))
        return results

    def _finished_ms(self, address: str) -> float | None:
        """When this host's last phase ended; None while it is still being scanned."""
        ping = self.discovery.get(address)
        if ping is not None and (not ping.done or not ping.up or ping.timed_out):
            return ping.finished_ms
        if self.options.scan_type == "connect":
            ports = self.portscan.get(address)
            return ports.finished_ms if ports is not None and ports.done else None
        return ping.finished_ms if ping is not None else self.start_ms

    def _host_result(self, target: Target, finished_ms: float | None) -> HostResult:
        address = target.address
        ping = self.discovery.get(address)
        ports = self.portscan.get(address)
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
        timing_source = ports if ports is not None and ports.rtt.srtt_us is not None else ping
        if timing_source is not None and timing_source.rtt.srtt_us is not None:
            host.srtt_us = int(timing_source.rtt.srtt_us)
            host.rttvar_us = int(timing_source.rtt.rttvar_us)
            host.timeout_us = int(timing_source.rtt.timeout_ms(self.options.timing) * 1000)
        if ports is not None:
            host.timed_out = ports.timed_out
            host.ports = [PortResult("tcp", port, state, reason)
                          for port, (state, reason) in sorted(ports.results.items())]
        return host
