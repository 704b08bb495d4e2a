"""--version-trace names the probe whose line matched (a fallback's, or NULL's), and the
candidate lines are cached on each probe (they go with their database)."""
import sys

from conftest import REPO

from worker.scan.probes import parse_probe_file
from worker.scan.version import PortProbing, match_response

sys.path.insert(0, str(REPO / "tests" / "worker"))
from test_version_scan import SAMPLE  # noqa: E402


def test_a_fallback_match_names_the_probe_that_owns_the_line():
    db = parse_probe_file(SAMPLE, "sample")
    null, hello, other = db.probes
    found = match_response(hello, null, b"220 Other FTP\r\n")
    assert (found.probe, found.owner, found.line) == ("Hello", "Other", other.rules[1].line)
    lines: list[str] = []
    probing = PortProbing(db, "192.0.2.1", 7000, 7, trace=lines.append)
    assert probing.start().kind == "connect"  # NULL
    assert probing.on_timeout().kind == "send"  # Hello, on NULL's quiet connection
    assert probing.on_data(b"220 Other FTP\r\n").kind == "done"
    assert lines[-1] == (f"Service scan match (Probe Hello matched with Other line "
                         f"{other.rules[1].line}): 192.0.2.1:7000 is ftp.  Version: "
                         f"|Other FTP|||")
    assert hello.candidates  # the cache lives on the probe


def test_the_database_resolves_its_null_probe_once():
    db = parse_probe_file(SAMPLE, "sample")
    assert db.null is db.probes[0] and PortProbing(db, "192.0.2.1", 80, 7).null is db.null


def test_the_fingerprint_platform_is_a_triplet():
    from worker.scan.version import PLATFORM

    machine, vendor, *rest = PLATFORM.split("-")
    assert machine and vendor in ("pc", "unknown") and rest
