"""Real `nsecluster worker` processes for the tests that run scans on a cluster (Redis on
127.0.0.1:6379, a database of each test module's own)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO


class Workers:
    def __init__(self, datadir: Path, logs: Path, broker: str):
        self.datadir, self.logs, self.broker = datadir, logs, broker
        self.processes: list[subprocess.Popen] = []

    def start(self, count: int = 2, concurrency: int = 2, privileged: bool = False,
              extra=()) -> None:
        for index in range(count):
            log = open(self.logs / f"worker{len(self.processes)}.log", "w")
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "coordinator.cli", "worker", "--broker", self.broker,
                 "--concurrency", str(concurrency), "--datadir", str(self.datadir),
                 "--hostname", f"test{len(self.processes)}@%h",
                 *(["--privileged"] if privileged else []), *extra],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all("ready." in self.log(i) for i in range(len(self.processes))):
                return
            assert all(p.poll() is None for p in self.processes), self.log(0) + self.log(-1)
            time.sleep(0.2)
        raise AssertionError("workers did not start:\n" + self.log(0))

    def log(self, index: int) -> str:
        paths = sorted(self.logs.glob("worker*.log"), key=lambda p: int(p.stem[6:]))
        return paths[index].read_text() if paths else ""

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
