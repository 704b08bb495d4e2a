"""The embedded default: host groups run in this process, on this process's event loop.

Jobs and results still go through the wire encoding, so the embedded default exercises exactly
the messages a cluster sends.
"""
from __future__ import annotations

from worker.protocol import GroupJob, GroupResult, ScanOptions, Target, decode, encode


class EmbeddedRunner:
    def __init__(self, scan_id: str, options: ScanOptions):
        self.scan_id = scan_id
        self.options = options

    def run_group(self, index: int, targets: tuple[Target, ...], on_progress=None) -> GroupResult:
        from worker.group import run_group  # the scanner loads only when a scan starts

        job = decode(encode(GroupJob(self.scan_id, index, targets, self.options)))
        return decode(encode(run_group(job, on_progress=on_progress)))
