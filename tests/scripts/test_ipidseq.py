"""ipidseq beside Nmap's, in two network namespaces joined by a veth pair: both SYN-scan and
probe the same target from namespace a, and must print the same class. The targets are
Linux itself in namespace b (192.0.2.2: its SYN-ACKs and RSTs carry IP ID 0) and a
responder of our own on 192.0.2.3 (tests/ipid_responder.py) that answers with IP IDs of each
class. Unprivileged (--unprivileged), the script does not run, as Nmap's."""
from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import REPO, run_nsecluster

from worker.nse.stage import _RAW_API

RESPONDER = Path(__file__).resolve().parents[1] / "ipid_responder.py"
LISTENER = r"""
import socket, sys, time
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("192.0.2.2", int(sys.argv[1])))
sock.listen(64)
print("ready", flush=True)
time.sleep(60)
"""
OPEN, CLOSED = 8080, 8081


def host_script_output(xml_path: Path, script: str = "ipidseq") -> str | None:
    for hostscript in ET.parse(xml_path).getroot().iter("hostscript"):
        for element in hostscript.iter("script"):
            if element.get("id") == script:
                return element.get("output")
    return None


def run_both(namespace, tmp_path: Path, target: str, *options: str) -> tuple:
    """(ours, nmap's) ipidseq output for a SYN scan of ``target`` from ``namespace``."""
    nmap = shutil.which("nmap")
    assert nmap, "nmap is required (.ci/setup installs Debian's nmap)"
    common = ["-sS", "-n", "-Pn", *options, "--script", "ipidseq", target]
    theirs_xml, ours_xml = tmp_path / "nmap.xml", tmp_path / "ours.xml"
    subprocess.run(["ip", "netns", "exec", namespace.name, nmap, *common, "-oX",
                    str(theirs_xml)], capture_output=True, text=True, timeout=60,
                   cwd=tmp_path, check=True)
    mine = run_nsecluster("scan", *common, "-oX", ours_xml, netns=namespace.name, timeout=60)
    assert mine.returncode == 0, mine.stderr
    return host_script_output(ours_xml), host_script_output(theirs_xml)


def started(process: subprocess.Popen) -> subprocess.Popen:
    assert process.stdout.readline().strip() == "ready"
    return process


@pytest.fixture
def linux_target(veth_pair):
    """192.0.2.2: Linux's own stack, OPEN listening and CLOSED not."""
    a, b = veth_pair
    listener = started(b.popen(sys.executable, "-c", LISTENER, OPEN, stdout=subprocess.PIPE,
                               text=True))
    yield a
    listener.kill()
    listener.wait(timeout=10)


@pytest.mark.parametrize("options, expected", [
    (["-p", f"{OPEN},{CLOSED}"], "All zeros"),
    (["-d", "-p", f"{CLOSED},{OPEN}"], f"All zeros [used port {OPEN}]"),  # open first
    (["-d", "-p", str(CLOSED)], f"All zeros [used port {CLOSED}]"),
    (["-d", "-p", str(CLOSED), "--script-args", f"probeport={OPEN}"],
     f"All zeros [used port {OPEN}]"),
    (["-d", "-p", str(CLOSED), "--script-args", f"ipidseq.probeport={OPEN}"],
     f"All zeros [used port {OPEN}]"),
    (["-p", str(CLOSED), "--script-args", "probeport=abc"], None),  # no port: no run
])
def test_linux_answers_carry_zero_ip_ids_as_nmap_finds(linux_target, tmp_path, options,
                                                       expected):
    ours, theirs = run_both(linux_target, tmp_path, "192.0.2.2", *options)
    assert theirs == expected
    assert ours == theirs


# Responder modes: a generator, or the list of IDs one run takes (the port scan's SYN takes
# the first; the list then starts again for the other run). -1: that probe is not answered.
@pytest.mark.parametrize("mode, expected", [
    ("zero", "All zeros"),
    ("constant", "Constant"),
    ("inc1", "Incremental!"),
    ("inc2", "Incremental!"),  # Nmap 7.93's class for steps of 2 as well
    ("broken", "Broken incremental!"),
    ("random", "Randomized"),
    ("1,100,1101,2102,3103,4104,5105", "Random Positive Increments"),
    ("1,65534,65535,0,1,2,3", "Incremental!"),  # the 16-bit wrap
    ("1,100,110,120,130,140,150", "Unknown"),  # steps of 10: no class
    ("1,100,101,-1", "Incremental!"),  # the first unanswered probe ends the series
    ("1,0,-1", "Unknown"),  # one answer is not a sequence
])
def test_each_ip_id_class_is_named_as_nmap_names_it(veth_pair, tmp_path, mode, expected):
    a, b = veth_pair
    responder = started(b.popen(sys.executable, RESPONDER, "vB", "192.0.2.3", "80", mode, "40",
                                stdout=subprocess.PIPE, text=True))
    try:
        ours, theirs = run_both(a, tmp_path, "192.0.2.3", "-p", "80")
    finally:
        responder.kill()
        responder.wait(timeout=10)
    assert theirs == expected
    assert ours == theirs


def test_unprivileged_the_script_does_not_run_as_nmaps(tmp_path, nmap_path):
    common = ["--unprivileged", "-sT", "-n", "-Pn", "-p", "1", "--script", "ipidseq",
              "127.0.0.1", "127.0.0.2"]
    theirs = subprocess.run([nmap_path, *common, "-oX", str(tmp_path / "nmap.xml")],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            check=True)
    ours = run_nsecluster("scan", *common, "-oX", tmp_path / "ours.xml")
    assert ours.returncode == 0, ours.stderr
    said = "NSE: [ipidseq] not running for lack of privileges."
    assert [line for line in theirs.stdout.splitlines() if "ipidseq" in line] == [said]
    ours_lines = (ours.stdout + ours.stderr).splitlines()  # our NSE log goes to stderr
    assert [line for line in ours_lines if "ipidseq" in line] == [said]
    assert host_script_output(tmp_path / "ours.xml") is None
    assert host_script_output(tmp_path / "nmap.xml") is None


def test_a_script_stage_for_ipidseq_names_it_a_raw_script():
    # A cluster sends the host groups of a stage's raw_scripts() to privileged workers:
    # the stage built for --script ipidseq must list it there.
    from worker.nse import stage
    from worker.nsock.loop import EventLoop
    from worker.protocol import ScanOptions, ScriptOptions
    assert _RAW_API.search((REPO / "scripts" / "ipidseq.nse").read_text())
    loop = EventLoop()
    try:
        built = stage.stage_for("ipidseq-raw", ScanOptions(scripts=ScriptOptions(
            rules=("ipidseq",))), loop, environ={})
        assert [script.id for script in built.scripts] == ["ipidseq"]
        assert "ipidseq" in built.raw_scripts()
    finally:
        stage.finish("ipidseq-raw")
        loop.close()
