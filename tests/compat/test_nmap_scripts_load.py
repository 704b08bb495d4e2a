"""Every script of Debian's Nmap data directory (/usr/share/nmap) loads under the Nmap 7
profile with valid metadata, and every rule it has can be asked, on realistic host and port
tables, without raising: tests/compat/rules_harness.py on the real engine, run in a network
namespace with only loopback, so no rule (nor anything it calls) reaches a real network.

The only scripts that do not load are the four needing libssh2, which nsecluster does not
provide: they are skipped quietly (stdnse.silent_require), as Nmap built without libssh2
skips them.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parent / "rules_harness.py"
NMAP_DATADIR = Path("/usr/share/nmap")
LIBSSH2_SCRIPTS = {"ssh-auth-methods", "ssh-brute", "ssh-publickey-acceptance", "ssh-run"}


def run_harness(netns, datadir: Path) -> dict:
    done = netns.run(sys.executable, HARNESS, datadir, check=False, timeout=240,
                     env={**os.environ, "PYTHONPATH": str(HARNESS.parents[2])})
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def loopback_ns():
    """A namespace with only loopback, for the whole module (conftest's netns is per test)."""
    from conftest import make_netns

    with make_netns() as space:
        yield space


@pytest.fixture(scope="module")
def report(loopback_ns):
    assert (NMAP_DATADIR / "scripts").is_dir(), "Debian's nmap-common is required"
    return run_harness(loopback_ns, NMAP_DATADIR)


def test_every_script_loads_except_the_libssh2_ones(report):
    files = sorted(p.stem for p in (NMAP_DATADIR / "scripts").glob("*.nse"))
    print(f"\nload check: {report['files']} scripts, {report['loaded']} loaded, "
          f"{len(report['skipped'])} skipped quietly: {', '.join(report['skipped'])}; "
          f"rules: {report['rules']}; {len(report['matched'])} scripts with a rule true")
    assert report["files"] == len(files) > 500
    assert report["failed"] == {}
    assert set(report["skipped"]) == LIBSSH2_SCRIPTS
    for name in LIBSSH2_SCRIPTS:  # and the reason is that module
        assert "libssh2" in (NMAP_DATADIR / "scripts" / f"{name}.nse").read_text()
    assert report["loaded"] == len(files) - len(LIBSSH2_SCRIPTS)
    assert report["metadata_problems"] == {}


def test_no_rule_raises_and_no_action_runs(report):
    assert report["rule_errors"] == []
    assert report["actions_ran"] == []
    rules = report["rules"]
    assert sum(rules.values()) >= report["loaded"]  # every script has at least one rule
    assert rules["portrule"] > 400 and rules["prerule"] > 50 and rules["hostrule"] > 50


def test_rules_pick_the_ports_nmap_scripts_are_for(report):
    matched = report["matched"]
    expected = {"http-title": "tcp/80", "ssh-hostkey": "tcp/22", "ftp-anon": "tcp/21",
                "smtp-commands": "tcp/25", "ssl-cert": "tcp/443", "mysql-info": "tcp/3306",
                "redis-info": "tcp/6379", "snmp-info": "udp/161", "dns-recursion": "udp/53",
                "memcached-info": "tcp/11211", "ntp-info": "udp/123"}
    for script, where in expected.items():
        assert where in matched.get(script, []), (script, matched.get(script))
    assert "tcp/22" not in matched["http-title"]
    assert "ssh-hostkey" in matched and "tcp/80" not in matched["ssh-hostkey"]


def test_the_harness_reports_a_rule_that_raises(loopback_ns, tmp_path):
    """The checks above could not pass by the harness missing errors."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (tmp_path / "nselib").symlink_to(NMAP_DATADIR / "nselib")
    (scripts / "bad-rule.nse").write_text(
        'description = "a rule that raises"\ncategories = {"safe"}\n'
        'portrule = function(host, port) return port.number.nothing end\n'
        'action = function() return "ran" end\n')
    (scripts / "good-rule.nse").write_text(
        'local shortport = require "shortport"\n'
        'description = "an http rule"\ncategories = {"safe"}\n'
        'portrule = shortport.http\naction = function() return "ran" end\n')
    report = run_harness(loopback_ns, tmp_path)
    assert report["loaded"] == 2
    assert any("bad-rule" in line and "threw an error!" in line
               for line in report["rule_errors"])
    assert "tcp/80" in report["matched"]["good-rule"]
    assert report["actions_ran"] == []
