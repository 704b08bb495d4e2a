"""The embedded default: host groups run in this process, on this process's event loop.

Jobs and results are the same objects a cluster sends as messages; here they are handed over
directly (tests check that every result survives the wire encoding unchanged).
"""
from __future__ import annotations

from worker.protocol import GroupJob, GroupResult, ScanOptions, Target


class EmbeddedRunner:
    def __init__(self, scan_id: str, options: ScanOptions):
        self.scan_id = scan_id
        self.options = options

    def run_group(self, index: int, targets: tuple[Target, ...], on_progress=None) -> GroupResult:
        from worker.group import run_group  # the scanner loads only when a scan starts

        return run_group(GroupJob(self.scan_id, index, targets, self.options),
                         on_progress=on_progress)
