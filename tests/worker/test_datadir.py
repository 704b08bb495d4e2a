"""The Nmap data directory search order."""
from __future__ import annotations

from pathlib import Path

from worker.datadir import DEFAULT_PREFIXES, DataPath


def test_order_is_datadir_nmapdir_home_then_prefixes():
    path = DataPath.from_environment(
        "/opt/data", {"NMAPDIR": "/env/nmap", "NSECLUSTER_NMAP_PREFIXES": "/p1:/p2"}, "/home/u")
    assert path.directories == (Path("/opt/data"), Path("/env/nmap"), Path("/home/u/.nmap"),
                                Path("/p1"), Path("/p2"))


def test_default_prefixes_when_the_variable_is_unset():
    path = DataPath.from_environment(None, {}, None)
    assert path.directories == tuple(Path(p) for p in DEFAULT_PREFIXES)
    assert DEFAULT_PREFIXES == ("/usr/local/share/nmap", "/usr/share/nmap")


def test_empty_prefix_variable_means_no_installed_nmap():
    assert DataPath.from_environment(None, {"NSECLUSTER_NMAP_PREFIXES": ""}, None).directories \
        == ()


def test_empty_values_and_repeats_are_ignored():
    path = DataPath.from_environment("", {"NMAPDIR": "", "NSECLUSTER_NMAP_PREFIXES": "/a::/b:/a"},
                                     "")
    assert path.directories == (Path("/a"), Path("/b"))


def test_find_returns_the_first_regular_file(tmp_path):
    first, second, third = (tmp_path / name for name in ("first", "second", "third"))
    for directory in (first, second, third):
        directory.mkdir()
    (first / "nmap-services").mkdir()  # a directory of that name is not the file
    (second / "nmap-services").write_text("a")
    (third / "nmap-services").write_text("b")
    path = DataPath((tmp_path / "missing", first, second, third))
    assert path.find("nmap-services") == second / "nmap-services"
    assert path.find_all("nmap-services") == [second / "nmap-services",
                                              third / "nmap-services"]
    assert path.find("nmap-os-db") is None and path.find_all("nmap-os-db") == []


def test_find_directory(tmp_path):
    (tmp_path / "b" / "scripts").mkdir(parents=True)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "scripts").write_text("not a directory")
    path = DataPath((tmp_path / "a", tmp_path / "b"))
    assert path.find_directory("scripts") == tmp_path / "b" / "scripts"
    assert path.find_directory("nselib") is None


def test_the_environment_drives_the_search(tmp_path):
    (tmp_path / "home" / ".nmap").mkdir(parents=True)
    (tmp_path / "home" / ".nmap" / "nmap-services").write_text("x")
    (tmp_path / "env").mkdir()
    environ = {"NMAPDIR": str(tmp_path / "env"), "NSECLUSTER_NMAP_PREFIXES": ""}
    path = DataPath.from_environment(None, environ, str(tmp_path / "home"))
    assert path.find("nmap-services") == tmp_path / "home" / ".nmap" / "nmap-services"
    (tmp_path / "env" / "nmap-services").write_text("y")
    assert path.find("nmap-services") == tmp_path / "env" / "nmap-services"
