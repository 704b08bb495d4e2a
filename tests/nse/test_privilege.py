"""nmap.is_privileged() as Nmap has it: true when this process may send raw packets, or as
--privileged/--unprivileged say; -sS told --unprivileged quits as an unprivileged -sS does."""
from __future__ import annotations

import os
import subprocess

import pytest
from conftest import run_nsecluster

SCRIPT = """
local nmap = require "nmap"
description = "Prints nmap.is_privileged()."
categories = {"safe"}
prerule = function() return true end
action = function() return tostring(nmap.is_privileged()) end
"""
def answer(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith("|_privilege-check: ")]
    assert len(lines) == 1, stdout
    return lines[0].split(": ", 1)[1]


def ours(script, *flags, without_raw=False):
    # without_raw: root without CAP_NET_RAW, where raw sockets are refused
    done = run_nsecluster("scan", "-n", "-Pn", "-p", "1", "127.0.0.1", "--script", script,
                          *flags, without_raw=without_raw, timeout=120)
    assert done.returncode == 0, done.stderr
    return answer(done.stdout)


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "privilege-check.nse"
    path.write_text(SCRIPT)
    return path


@pytest.mark.parametrize("flags, expected", [
    ((), "true"),
    (("--unprivileged",), "false"),
    (("--privileged",), "true"),
    (("--privileged", "--unprivileged"), "false"),  # the last one given counts
    (("--unprivileged", "--privileged"), "true"),
])
def test_as_root_the_answer_is_nmaps(script, nmap_path, flags, expected):
    if os.geteuid() != 0:
        pytest.fail("comparing with privileged nmap needs root (CI runs as root)")
    theirs = subprocess.run([nmap_path, "-n", "-Pn", "-sT", "-p", "1", "127.0.0.1", "--script",
                             str(script), *flags], capture_output=True, text=True, timeout=60,
                            check=True)
    assert answer(theirs.stdout) == expected
    assert ours(script, "-sT", *flags) == expected


def test_without_raw_sockets_the_process_is_not_privileged_unless_told(script):
    assert ours(script, without_raw=True) == "false"
    assert ours(script, "--privileged", without_raw=True) == "true"


def test_syn_scan_told_unprivileged_quits_as_an_unprivileged_syn_scan():
    told = run_nsecluster("scan", "-sS", "--unprivileged", "-n", "-Pn", "-p", "1", "127.0.0.1")
    lacking = run_nsecluster("scan", "-sS", "-n", "-Pn", "-p", "1", "127.0.0.1",
                             without_raw=True, timeout=120)
    assert told.returncode == lacking.returncode == 1
    assert told.stderr == lacking.stderr
    assert told.stderr.count("\n") == 1 and "requires root privileges" in told.stderr
    assert told.stdout == ""
