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
