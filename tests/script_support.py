"""Bundled scripts beside Nmap's: run the same script name against the same loopback
service with nmap (its own script and libraries) and with nsecluster (ours), and compare
what each puts in the XML <script> element: the output text and the structure."""
from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from conftest import run_nsecluster


@dataclass
class ScriptResult:
    output: str | None  # the output attribute, None when the script gave nothing
    structure: list | None  # [(key, value or [children])] from <elem>/<table>
    stdout: str


def structure(element: ET.Element) -> list:
    items = []
    for child in element:
        key = child.get("key")
        if child.tag == "elem":
            items.append((key, child.text or ""))
        elif child.tag == "table":
            items.append((key, structure(child)))
    return items


def _script_result(xml_path: Path, script: str, port: int | None, stdout: str) -> ScriptResult:
    root = ET.parse(xml_path).getroot()
    places = root.iter("port") if port is not None else root.iter("hostscript")
    for place in places:
        if port is not None and place.get("portid") != str(port):
            continue
        for element in place.iter("script"):
            if element.get("id") == script:
                return ScriptResult(element.get("output"), structure(element), stdout)
    return ScriptResult(None, None, stdout)


def run_both(tmp_path: Path, script: str, port: int | None, target: str = "127.0.0.1",
             args: str | None = None, ports: str | None = None, extra=(),
             timeout: int = 120) -> tuple[ScriptResult, ScriptResult]:
    """(ours, nmap's) for ``script`` on ``port`` (None: the host script result)."""
    common = ["-sT", "-n", "-Pn", "-p", ports or str(port), target, "--script", script,
              *extra]
    if args:
        common += ["--script-args", args]
    nmap = shutil.which("nmap")
    assert nmap, "nmap is required (.ci/setup installs Debian's nmap)"
    theirs_xml, ours_xml = tmp_path / "nmap.xml", tmp_path / "ours.xml"
    done = subprocess.run([nmap, "--unprivileged", *common, "-oX", str(theirs_xml)],
                          capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    theirs = _script_result(theirs_xml, script, port, done.stdout)
    mine = run_nsecluster("scan", "--unprivileged", *common, "-oX", str(ours_xml),
                          timeout=timeout)
    assert mine.returncode == 0, mine.stderr
    ours = _script_result(ours_xml, script, port, mine.stdout)
    return ours, theirs


def normalized(text: str | None, volatile: dict[str, str]) -> str | None:
    """``text`` with each regular expression of ``volatile`` replaced by its stand-in."""
    if text is None:
        return None
    for pattern, stand_in in volatile.items():
        text = re.sub(pattern, stand_in, text)
    return text


def assert_same(ours: ScriptResult, theirs: ScriptResult, volatile: dict[str, str] | None = None):
    volatile = volatile or {}
    assert normalized(ours.output, volatile) == normalized(theirs.output, volatile), (
        f"output differs\n--- ours\n{ours.output}\n--- nmap\n{theirs.output}")
    assert _normalized_tree(ours.structure, volatile) == \
        _normalized_tree(theirs.structure, volatile)


def _normalized_tree(tree, volatile):
    if tree is None:
        return None
    return [(key, normalized(value, volatile) if isinstance(value, str)
             else _normalized_tree(value, volatile)) for key, value in tree]
