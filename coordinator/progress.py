"""Progress on a terminal: hosts done, ports per second, time left.

It appears only on a terminal and only once a scan has run for a couple of seconds, so short
scans and redirected output look exactly like Nmap's. ``rich`` is imported only then.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable


class StdoutProxy:
    """Writes to whatever ``sys.stdout`` is now, so text printed while the progress bar is up
    goes through rich's redirection and appears above the bar instead of through it."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return sys.stdout.isatty()


class ProgressDisplay:
    def __init__(self, enabled: bool, estimated_hosts: int | None, delay_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic):
        self.enabled = enabled
        self.estimated_hosts = estimated_hosts
        self.delay_s = delay_s
        self.clock = clock
        self.started = clock()
        self.hosts_done = 0
        self.units_done_before = 0  # ports (or probes) finished in earlier groups
        self.group_size = 0
        self.group_fraction = 0.0
        self.group_units = 0
        self._progress = None
        self._task = None

    def group_started(self, size: int) -> None:
        self.group_size = size
        self.group_fraction = 0.0
        self.group_units = 0

    def update(self, units_done: int, units_total: int) -> None:
        self.group_units = units_done
        self.group_fraction = units_done / units_total if units_total else 0.0
        self._render()

    def group_finished(self, hosts: int) -> None:
        self.hosts_done += hosts
        self.units_done_before += self.group_units
        self.group_fraction = 0.0
        self.group_units = 0
        self._render()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def rate(self) -> float:
        elapsed = self.clock() - self.started
        return (self.units_done_before + self.group_units) / elapsed if elapsed > 0 else 0.0

    def _render(self) -> None:
        if not self.enabled:
            return
        if self._progress is None:
            if self.clock() - self.started < self.delay_s:
                return
            self._start()
        done = self.hosts_done + self.group_fraction * self.group_size
        self._progress.update(self._task, completed=done,
                              rate=f"{self.rate():,.0f} ports/s",
                              hosts=f"{self.hosts_done}"
                                    + (f"/{self.estimated_hosts}" if self.estimated_hosts else ""))

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]Scanning[/bold] {task.fields[hosts]} hosts"),
            BarColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            transient=True,
            redirect_stdout=True,
            redirect_stderr=True,
        )
        self._task = self._progress.add_task("scan", total=self.estimated_hosts,
                                             rate="", hosts="")
        self._progress.start()
