"""The script stage of a worker process: scans take turns on one engine, each with its own
settings (a cluster worker runs groups of several scans, interleaved)."""
from __future__ import annotations

from worker.nse import stage
from worker.nsock.loop import EventLoop
from worker.protocol import ScanOptions, ScriptOptions

ARGS_SCRIPT = """
local nmap = require "nmap"
local stdnse = require "stdnse"
description = "Reports this scan's script argument and script timeout."
categories = {"safe"}
prerule = function() return true end
action = function() return stdnse.get_script_args("tag") end
"""


def test_scans_taking_turns_on_one_engine_each_keep_their_settings(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "show-args.nse").write_text(ARGS_SCRIPT)
    loop = EventLoop()

    def options(tag: str) -> ScanOptions:
        return ScanOptions(datadir=str(tmp_path), scripts=ScriptOptions(
            rules=("show-args",), args=f"tag={tag}"))

    try:
        first = stage.stage_for("scan-a", options("alpha"), loop, environ={})
        second = stage.stage_for("scan-b", options("beta"), loop, environ={})
        assert first.engine is second.engine  # one engine per process
        assert [r.output for r in first.prerule()] == ["alpha"]
        assert [r.output for r in second.prerule()] == ["beta"]
        assert [r.output for r in first.prerule()] == ["alpha"]
    finally:
        stage.finish("scan-a")
        stage.finish("scan-b")
        loop.close()


INTENSITY_SCRIPT = """
local nmap = require "nmap"
description = "Reports nmap.version_intensity()."
categories = {"safe"}
prerule = function() return true end
action = function() return tostring(nmap.version_intensity()) end
"""


def test_version_intensity_follows_the_version_options(tmp_path):
    """nmap.version_intensity() answers -sV's --version-intensity (7 by default) for scripts
    not chosen by name (those get 9)."""
    from worker.protocol import VersionOptions
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "show-intensity.nse").write_text(INTENSITY_SCRIPT)
    loop = EventLoop()
    rules = (str(tmp_path / "scripts") + "/",)  # a directory: not chosen by name
    cases = {"light": VersionOptions(intensity=2), "three": VersionOptions(intensity=3),
             "default": VersionOptions(), "none": None}
    try:
        outputs = {}
        for name, version in cases.items():
            options = ScanOptions(datadir=str(tmp_path), version=version,
                                  scripts=ScriptOptions(rules=rules))
            outputs[name] = [r.output for r in
                             stage.stage_for(name, options, loop, environ={}).prerule()]
        assert outputs == {"light": ["2"], "three": ["3"], "default": ["7"], "none": ["7"]}
        by_name = ScanOptions(datadir=str(tmp_path), version=VersionOptions(intensity=3),
                              scripts=ScriptOptions(rules=("show-intensity",)))
        assert [r.output for r in
                stage.stage_for("by-name", by_name, loop, environ={}).prerule()] == ["9"]
    finally:
        for name in (*cases, "by-name"):
            stage.finish(name)
        loop.close()
