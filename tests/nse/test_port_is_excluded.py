"""nmap.port_is_excluded answers from the Exclude directive of nmap-service-probes on the data
path with -sV, and false without it, as Nmap does."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from worker.nse import stage
from worker.nsock.loop import EventLoop
from worker.protocol import ScanOptions, ScriptOptions, VersionOptions

PROBES = b"""Exclude 53,T:9100-9101,U:161
Probe TCP NULL q||
match ssh m|^SSH-|
"""

SCRIPT = """
local nmap = require "nmap"
description = "Reports nmap.port_is_excluded for a few ports."
categories = {"safe"}
RULE = function() return true end
action = function()
  local out = {}
  for _, c in ipairs({{53, "tcp"}, {9100, "tcp"}, {9101, "udp"}, {161, "udp"},
                      {161, "tcp"}, {22, "tcp"}, {53, "sctp"}}) do
    out[#out + 1] = ("%d/%s=%s"):format(c[1], c[2], tostring(nmap.port_is_excluded(c[1], c[2])))
  end
  local ok, err = pcall(nmap.port_is_excluded, 53, "icmp")
  out[#out + 1] = tostring(ok)
  return table.concat(out, " ")
end
"""

EXPECTED = ("53/tcp=true 9100/tcp=true 9101/udp=false 161/udp=true "
            "161/tcp=false 22/tcp=false 53/sctp=false false")
WITHOUT_SV = ("53/tcp=false 9100/tcp=false 9101/udp=false 161/udp=false "
              "161/tcp=false 22/tcp=false 53/sctp=false false")


def datadir(tmp_path, rule="prerule"):
    """Nmap fails a prerule's call with -sV (its probe file is read for the service scan, after
    the pre-scan); it is compared with a hostrule."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "excluded.nse").write_text(SCRIPT.replace("RULE", rule))
    (tmp_path / "nmap-service-probes").write_bytes(PROBES)
    return tmp_path


def run_ours(data, version):
    loop = EventLoop()
    try:
        options = ScanOptions(datadir=str(data), version=version,
                              scripts=ScriptOptions(rules=("excluded",)))
        return [r.output for r in
                stage.stage_for("excluded", options, loop, environ={}).prerule()]
    finally:
        stage.finish("excluded")
        loop.close()


def test_port_is_excluded_reads_the_exclude_directive(tmp_path):
    data = datadir(tmp_path)
    assert run_ours(data, VersionOptions()) == [EXPECTED]
    assert run_ours(data, None) == [WITHOUT_SV]


@pytest.mark.skipif(shutil.which("nmap") is None, reason="needs nmap")
def test_nmap_agrees(tmp_path):
    data = datadir(tmp_path, "hostrule")
    for flags, expected in ((["-sV"], EXPECTED), ([], WITHOUT_SV)):
        run = subprocess.run(["nmap", "-n", "-Pn", "-p", "1", *flags, "--datadir", str(data),
                              "--script", "excluded", "127.0.0.1"],
                             capture_output=True, text=True, timeout=60)
        assert f"excluded: {expected}" in run.stdout, run.stdout + run.stderr
