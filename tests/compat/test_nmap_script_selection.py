"""Selection over Nmap's own script.db (Debian's /usr/share/nmap): categories, name
patterns and boolean expressions select exactly the scripts nmap selects, as ``--script-help``
lists them, and the listing itself is nmap's text byte for byte. The only scripts nmap lists
and we do not are the four needing libssh2 (not provided; skipped quietly as they load).
"""
from __future__ import annotations

import subprocess

import pytest
from conftest import run_nsecluster

DATADIR = "/usr/share/nmap"
LIBSSH2_SCRIPTS = {"ssh-auth-methods", "ssh-brute", "ssh-publickey-acceptance", "ssh-run"}
EXPRESSIONS = ("default", "safe", "discovery", "version", "default and not intrusive",
               "http-* and safe", "not (intrusive or dos or exploit or brute)",
               "(default or vuln) and not http-*", "ssh-*,ftp-anon,ssl-cert", "all",
               "smb-* or (broadcast and not dos)")


def nmap_help(nmap: str, expression: str, tmp_path) -> str:
    """nmap's --script-help text after its "Starting Nmap" line (run from an empty
    directory: Nmap warns about ./nselib otherwise)."""
    done = subprocess.run([nmap, "--datadir", DATADIR, "--script-help", expression],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n", 1)[1]


def our_help(expression: str) -> str:
    done = run_nsecluster("scan", "--datadir", DATADIR, "--script-help", expression,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def names(text: str) -> list[str]:
    lines = text.split("\n")
    return [lines[i - 1] for i, line in enumerate(lines) if line.startswith("Categories: ")]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_selection_is_nmaps(expression, nmap_path, tmp_path):
    theirs, ours = nmap_help(nmap_path, expression, tmp_path), our_help(expression)
    their_names = [n for n in names(theirs) if n not in LIBSSH2_SCRIPTS]
    assert their_names, expression
    assert names(ours) == their_names
    print(f"\n{expression!r}: {len(their_names)} scripts, as nmap")


@pytest.mark.parametrize("expression", ["default", "version", "http-* and safe"])
def test_script_help_text_is_nmaps(expression, nmap_path, tmp_path):
    """Descriptions as written: one without a final newline runs into the next script's
    blank line, one with two is followed by two blank lines, as in nmap's listing."""
    assert our_help(expression) == nmap_help(nmap_path, expression, tmp_path)
