"""The embedded default: host groups run in this process, on this process's event loop.

Jobs and results are the same objects a cluster sends as messages; here they are handed over
directly (tests check that every result survives the wire encoding unchanged).
"""
from __future__ import annotations

from worker.protocol import GroupJob, GroupResult, ScanOptions, ScriptResult, Target


class EmbeddedRunner:
    def __init__(self, scan_id: str, options: ScanOptions, log=None):
        self.scan_id = scan_id
        self.options = options
        self.log = log

    def run_group(self, index: int, targets: tuple[Target, ...], on_progress=None) -> GroupResult:
        from worker.group import run_group  # the scanner loads only when a scan starts

        return run_group(GroupJob(self.scan_id, index, targets, self.options),
                         on_progress=on_progress, log=self.log)

    def run_groups(self, groups, on_start, on_progress=None):
        """One group after another, each on this process's loop."""
        for index, targets in groups:
            on_start(targets)
            yield self.run_group(index, targets, on_progress)

    def cancel(self) -> None:
        """Nothing runs elsewhere: an interrupted group already returned what finished."""

    def prepare(self) -> None:
        """Select and load the scripts now: a script that cannot load stops the scan before
        any output is opened or packet sent, as in Nmap."""
        if self.options.scripts is None:
            return
        from worker.nse.stage import stage_for
        from worker.nsock.loop import process_loop

        stage_for(self.scan_id, self.options, process_loop(), self.log)

    def prerule(self) -> tuple[list[ScriptResult], list[str]]:
        if self.options.scripts is None:
            return [], []
        from worker.nse.stage import run_prerule
        from worker.nsock.loop import process_loop

        results, added, _ = run_prerule(self.scan_id, self.options, process_loop(), self.log)
        return results, added

    def postrule(self) -> list[ScriptResult]:
        if self.options.scripts is None:
            return []
        from worker.nse.stage import run_postrule
        from worker.nsock.loop import process_loop

        return run_postrule(self.scan_id, self.options, process_loop(), self.log)
