"""``nsecluster scan``: plan, split into host groups, run them, write every output as each
group completes (so a killed scan keeps every finished host)."""
from __future__ import annotations

import collections
import itertools
import signal
import sys
import time

from coordinator.errors import UserError
from coordinator.grouping import host_groups
from coordinator.output import open_writers
from coordinator.output.model import RunStats, ScanInfo
from coordinator.plan import ScanPlan, build_plan
from coordinator.progress import ProgressDisplay, StdoutProxy
from coordinator.targets import TargetStream, parse_excludes, read_exclude_file, read_target_file
from worker.protocol import HostResult, needs_raw_sockets


def run_scan_command(args, command_line: str, environ: dict) -> int:
    plan = build_plan(args, command_line, environ)
    told_unprivileged = plan.options.privilege == "unprivileged"
    if needs_raw_sockets(plan.options) and (told_unprivileged or not plan.broker):
        from worker.nsock.raw import raw_sockets_allowed
        # Nmap quits too; without --unprivileged a cluster sends it to privileged workers
        if told_unprivileged or not raw_sockets_allowed():
            raise UserError(f"You requested a scan type which requires root privileges "
                            f"({_raw_sockets_needed(plan.options)})")
    for warning in plan.warnings:
        print(warning, file=sys.stderr)
    stop_on_signals()
    return Scan(plan).run()


def _raw_sockets_needed(options) -> str:
    """Which flags need raw sockets, and what to do instead."""
    flags = ["-sS"] * (options.scan_type == "syn") + ["-sU"] * options.udp_scan
    text = " and ".join(flags) + (" need" if len(flags) > 1 else " needs")
    text += " raw sockets: run as root or with CAP_NET_RAW"
    return text + (", or use -sT" if options.scan_type == "syn" else "")


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM end the scan cleanly (outputs closed with every finished host),
    also when the shell started us with SIGINT ignored, as it does for background jobs."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)


class Scan:
    def __init__(self, plan: ScanPlan):
        self.plan = plan
        self.resolve_failures = 0
        self.added_tokens: collections.deque[str] = collections.deque()
        self.hosts_total = self.hosts_up = self.hosts_down = 0

    def run(self) -> int:
        plan = self.plan
        targets = self._targets()
        info = ScanInfo(
            command_line=plan.command_line, start_time=plan.start_time,
            scan_type=_reported_scan_type(plan.options), tcp_ranges=plan.options.ports.tcp,
            udp_ranges=plan.options.ports.udp, udp_scan=plan.options.udp_scan,
            verbosity=plan.options.verbosity,
            debugging=plan.options.debugging, show_reason=plan.show_reason,
            open_only=plan.open_only,
            script_scan=plan.options.scripts is not None and plan.options.scripts.script_scan,
            version_scan=plan.options.version is not None)
        if plan.broker:
            from coordinator.cluster import ClusterRunner
            self.runner = ClusterRunner(plan.scan_id, plan.options, plan.broker, log=_log,
                                        command_line=plan.command_line)
        else:
            from coordinator.embedded import EmbeddedRunner
            self.runner = EmbeddedRunner(plan.scan_id, plan.options, log=_log)
        self.runner.prepare()
        writers = open_writers(plan.outputs, info, stdout=StdoutProxy())
        estimate = None if plan.input_file else TargetStream(list(plan.target_tokens), (),
                                                             family=None).estimated_count()
        progress = ProgressDisplay(enabled=sys.stderr.isatty() and plan.interactive,
                                   estimated_hosts=estimate)
        interrupted = False
        error = None
        completed = False
        started = time.monotonic()
        try:
            writers.begin(info)
            if plan.interactive:
                for notice in plan.notices:
                    print(notice, flush=True)
            interrupted = self._run_groups(targets, writers, progress)
            completed = not interrupted
        except KeyboardInterrupt:
            interrupted = True
        except UserError as exc:  # e.g. a bad line deep in -iL: the outputs say why they end
            error = str(exc)
            raise
        finally:
            if not completed:  # whatever stopped the scan, nothing of it runs on elsewhere
                self.runner.cancel()
            progress.close()
            failed = getattr(self.runner, "failures", 0)
            if self.hosts_total == 0 and not interrupted and error is None and not failed:
                print("WARNING: No targets were specified, so 0 hosts scanned.",
                      file=sys.stderr)
            writers.end(RunStats(end_time=time.time(), elapsed_s=time.monotonic() - started,
                                 hosts_total=self.hosts_total, hosts_up=self.hosts_up,
                                 hosts_down=self.hosts_down, interrupted=interrupted,
                                 error=error))
            writers.close()
        if interrupted:
            return 130
        return 1 if self.resolve_failures or getattr(self.runner, "failures", 0) else 0

    def _targets(self, tokens=None) -> TargetStream:
        """The scan's targets, then the ones scripts add; or just ``tokens``."""
        plan = self.plan
        if tokens is None:
            tokens = itertools.chain(plan.target_tokens, self._added_targets())
            if plan.input_file is not None:
                file_tokens = read_target_file(plan.input_file, sys.stdin)  # fails now
                tokens = itertools.chain(plan.target_tokens, file_tokens,
                                         self._added_targets())
        excludes = [spec for text in plan.excludes for spec in parse_excludes(text)]
        if plan.exclude_file is not None:
            excludes.extend(read_exclude_file(plan.exclude_file))
        from coordinator.resolve import make_name_resolver
        # Without -6 both families' literals are scanned (Nmap insists on -6 for IPv6); names
        # resolve to the family of -6.
        return TargetStream(tokens, excludes, make_name_resolver(plan.address_family),
                            self._resolve_failed,
                            family=6 if plan.address_family == 6 else None,
                            on_warning=lambda message: print(message, file=sys.stderr))

    def _resolve_failed(self, message: str) -> None:
        self.resolve_failures += 1
        print(message, file=sys.stderr)

    def _run_groups(self, targets: TargetStream, writers, progress: ProgressDisplay) -> bool:
        plan = self.plan
        runner = self.runner
        results, added = runner.prerule()
        self.added_tokens.extend(added)
        if results:
            writers.prescript(results)
        def started(group):
            if plan.options.verbosity:
                ports = plan.options.ports
                print(f"Scanning {len(group)} host{'s' if len(group) != 1 else ''} "
                      f"[{ports.count('tcp') + ports.count('udp')} ports/host]",
                      file=sys.stderr)
            progress.group_started(len(group))

        numbers = itertools.count()
        stream = targets
        while stream is not None:  # more rounds only for targets added after the split ended
            groups = ((next(numbers), group) for group in
                      host_groups(stream, plan.first_group_size, plan.group_size))
            for result in runner.run_groups(groups, started, progress.update):
                self.added_tokens.extend(result.new_targets)
                for host in result.hosts:
                    self._count(host)
                    writers.host(host)
                progress.group_finished(len(result.hosts))
                if result.interrupted:
                    return True
            stream = self._targets(self._added_targets()) if self.added_tokens else None
        results = runner.postrule()
        if results:
            writers.postscript(results)
        return False

    def _added_targets(self):
        """Targets scripts added (nmap.add_targets), as the split reaches them."""
        while self.added_tokens:
            yield self.added_tokens.popleft()

    def _count(self, host: HostResult) -> None:
        self.hosts_total += 1
        if host.status == "down":
            self.hosts_down += 1
        else:
            self.hosts_up += 1


def _reported_scan_type(options) -> str:
    """The outputs' scan type: the TCP one, "udp" for -sU alone, "none" for -sn."""
    if options.scan_type == "none" and options.udp_scan:
        return "udp"
    return options.scan_type


def _log(line: str) -> None:
    """Engine messages (NSE: ...) go to standard error, beside the progress display."""
    print(line, file=sys.stderr, flush=True)
