"""ssh-hostkey and ssh2-enum-algos beside Nmap's, on real OpenSSH servers started by the
tests: 127.0.0.51 with DSA, RSA, ECDSA and Ed25519 host keys (ssh-dss and ssh-rsa signatures
enabled, so Nmap 7.93 sees those keys too) and 127.0.0.52 with the same keys and restricted key
exchange, cipher, MAC and compression lists. Both tools scan both hosts with the same
arguments; the <script> elements (output text and structure) must be equal, keyed elements
compared without regard to their order (Nmap's comes from a Lua hash table), and the values
must be the ones ssh-keygen and the server configuration give. Scripted servers on
127.0.0.53-59 send garbage (a clean result or none, never an error), speak SSH-1 or bend
the rules in ways RFC 4253 allows."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import run_nsecluster
from script_support import structure

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ssh_peer import (FakeSsh, Sshd, byte_chunks, kexinit, make_keys,  # noqa: E402
                      md5_fingerprint, packet2, public_blob, sha256_fingerprint,
                      ssh1_public_key, ssh_string)

FULL, RESTRICTED = "127.0.0.51", "127.0.0.52"
KEX = "curve25519-sha256,diffie-hellman-group14-sha256"
CIPHERS = "aes256-ctr,aes128-ctr"
MACS = "hmac-sha2-256,hmac-sha1"  # Nmap offers no SHA-2 MAC: one it knows
SSH1_MODULUS = int("c" + "3" * 254 + "b", 16)  # 1024 bits
HOSTKEY_TYPES = {"dsa": ("ssh-dss", "DSA"), "rsa": ("ssh-rsa", "RSA"), "ecdsa": ("ecdsa-sha2-nistp256", "ECDSA"),
                 "ed25519": ("ssh-ed25519", "ED25519")}


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sshd")
    keys = make_keys(directory / "keys", ("rsa", "ecdsa", "ed25519", "dsa"))
    full = Sshd(directory / "full", FULL, keys, extra=("HostKeyAlgorithms +ssh-rsa,ssh-dss",))
    restricted = Sshd(directory / "restricted", RESTRICTED, keys,
                      extra=(f"KexAlgorithms {KEX}", f"Ciphers {CIPHERS}", f"MACs {MACS}",
                             "Compression no"))
    started = []
    try:
        for server in (full, restricted):
            started.append(server.start())
        yield keys
    finally:
        for server in started:
            server.stop()


# -- running both tools ------------------------------------------------------------------------

def scan_both(tmp_path: Path, targets: str, scripts: str, args: str | None = None,
              extra=(), name: str = "scan") -> tuple[dict, dict]:
    """({place: (output, structure)}, the same for nmap); place is (ip, script) for port 22
    results and ("post", script) for post-scan results."""
    common = ["-sT", "-n", "-Pn", "-p", "22", targets, "--script", scripts, *extra]
    if args:
        common += ["--script-args", args]
    nmap = shutil.which("nmap")
    assert nmap, "nmap is required (.ci/setup installs Debian's nmap)"
    theirs_xml, ours_xml = tmp_path / f"{name}-nmap.xml", tmp_path / f"{name}-ours.xml"
    subprocess.run([nmap, "--unprivileged", *common, "-oX", str(theirs_xml)],
                   capture_output=True, text=True, timeout=120, cwd=tmp_path)
    mine = run_nsecluster("scan", "--unprivileged", *common, "-oX", str(ours_xml),
                          timeout=120)
    assert mine.returncode == 0, mine.stderr
    return results(ours_xml), results(theirs_xml)


def results(path: Path) -> dict:
    found = {}
    root = ET.parse(path).getroot()
    for host in root.iter("host"):
        ip = host.find("address").get("addr")
        for port in host.iter("port"):
            for script in port.iter("script"):
                found[(ip, script.get("id"))] = (script.get("output"), structure(script))
    for post in root.iter("postscript"):
        for script in post.iter("script"):
            found[("post", script.get("id"))] = (script.get("output"), structure(script))
    return found


def canonical(tree):
    """Keyed items sorted by key (Nmap's order is a hash table's); list items kept in order."""
    if not isinstance(tree, list):
        return tree
    listed = [(None, canonical(value)) for key, value in tree if key is None]
    keyed = sorted((key, canonical(value)) for key, value in tree if key is not None)
    return listed + keyed


def assert_same(ours: dict, theirs: dict, place) -> tuple[str, list]:
    assert place in theirs, f"nmap gave no {place}"
    assert place in ours, f"we gave no {place}; nmap: {theirs[place][0]}"
    (our_text, our_tree), (their_text, their_tree) = ours[place], theirs[place]
    assert our_text == their_text, f"{place}\n--- ours\n{our_text}\n--- nmap\n{their_text}"
    assert canonical(our_tree) == canonical(their_tree)
    return our_text, our_tree


def expected_key(keys: dict, kind: str) -> dict:
    bits, md5 = md5_fingerprint(keys[kind])
    key_type, algorithm = HOSTKEY_TYPES[kind]
    return {"bits": bits, "md5": md5, "type": key_type, "algorithm": algorithm,
            "sha256": sha256_fingerprint(keys[kind]), "blob": public_blob(keys[kind])}


# -- default scan of both servers ----------------------------------------------------------------

@pytest.fixture(scope="module")
def default_scan(servers, tmp_path_factory):
    return scan_both(tmp_path_factory.mktemp("default"), "127.0.0.51-52",
                     "ssh-hostkey,ssh2-enum-algos")


def test_hostkey_default_matches_nmap(servers, default_scan):
    ours, theirs = default_scan
    text, tree = assert_same(ours, theirs, (FULL, "ssh-hostkey"))
    lines = []
    for kind in ("dsa", "rsa", "ecdsa", "ed25519"):
        key = expected_key(servers, kind)
        lines.append(f"  {key['bits']} {key['md5']} ({key['algorithm']})")
        assert (None, sorted([("bits", str(key["bits"])), ("fingerprint", key["md5"]),
                              ("key", key["blob"]), ("type", key["type"])])) in \
            canonical(tree)
    assert text == "\n" + "\n".join(lines)
    # ssh-rsa signatures (and DSA) are off on the restricted server: Nmap 7.93 asks for
    # ssh-rsa only, not rsa-sha2-*, so neither tool shows the RSA key there
    text, _ = assert_same(ours, theirs, (RESTRICTED, "ssh-hostkey"))
    assert text == "\n" + "\n".join(lines[2:])


def test_hostkey_postrule_reports_shared_keys(servers, default_scan):
    ours, theirs = default_scan
    place = ("post", "ssh-hostkey")
    assert place in ours and place in theirs
    (our_text, our_tree), (their_text, their_tree) = ours[place], theirs[place]

    def blocks(text):
        head, *rest = re.split(r"\n(?=Key )", text)
        return head, sorted(rest)

    assert blocks(our_text) == blocks(their_text)
    assert sorted(map(canonical_item, our_tree)) == sorted(map(canonical_item, their_tree))
    expected = []
    for kind in ("ecdsa", "ed25519"):  # the DSA and RSA keys are seen on one host only
        key = expected_key(servers, kind)
        expected.append(f"Key {key['bits']} {key['md5']} ({key['algorithm']}) used by:\n"
                        f"  {FULL}\n  {RESTRICTED}")
    assert blocks(our_text) == ("Possible duplicate hosts", sorted(expected))


def canonical_item(item):
    return repr(canonical([item]))


def test_enum_algos_matches_nmap(servers, default_scan):
    ours, theirs = default_scan
    text, tree = assert_same(ours, theirs, (RESTRICTED, "ssh2-enum-algos"))
    tables = dict(tree)
    assert [name for name, _ in tree] == ["kex_algorithms", "server_host_key_algorithms",
                                          "encryption_algorithms", "mac_algorithms",
                                          "compression_algorithms"]
    kex = [value for _, value in tables["kex_algorithms"]]
    assert kex[:2] == KEX.split(",")  # (OpenSSH may add its kex-strict marker after them)
    assert [value for _, value in tables["encryption_algorithms"]] == CIPHERS.split(",")
    assert [value for _, value in tables["mac_algorithms"]] == MACS.split(",")
    assert [value for _, value in tables["compression_algorithms"]] == ["none"]
    assert "  encryption_algorithms: (2)\n      aes256-ctr\n      aes128-ctr\n" in text
    assert text.endswith("  compression_algorithms: (1)\n      none")
    text, tree = assert_same(ours, theirs, (FULL, "ssh2-enum-algos"))
    assert "ssh-rsa" in [value for _, value in dict(tree)["server_host_key_algorithms"]]


# -- output formats ------------------------------------------------------------------------------

def test_hostkey_all_formats_match_nmap(servers, tmp_path):
    ours, theirs = scan_both(tmp_path, FULL, "ssh-hostkey", args="ssh_hostkey=all")
    text, _ = assert_same(ours, theirs, (FULL, "ssh-hostkey"))
    for kind in ("rsa", "ecdsa", "ed25519"):
        key = expected_key(servers, kind)
        bubble = subprocess.run(["ssh-keygen", "-B", "-f", str(servers[kind])],
                                capture_output=True, text=True, timeout=30,
                                check=True).stdout.split()[1]
        assert f"{key['bits']} {key['md5']} ({key['algorithm']})\n" in text
        assert f"\n{key['bits']} {key['sha256']} ({key['algorithm']})\n" in text
        assert f"\n{key['bits']} {bubble} ({key['algorithm']})\n" in text
        assert f"\n{key['type']} {key['blob']}" in text
    assert "\n\n+--[ RSA 3072]----+\n|" in text


def test_hostkey_chosen_formats_and_verbosity_match_nmap(servers, tmp_path):
    ours, theirs = scan_both(tmp_path, RESTRICTED, "ssh-hostkey",
                             args="ssh_hostkey='visual sha256_bubble'", name="formats")
    text, _ = assert_same(ours, theirs, (RESTRICTED, "ssh-hostkey"))
    key = expected_key(servers, "ed25519")
    assert f"  {key['bits']} {key['sha256']} (ED25519)\n" in text
    assert key["md5"] not in text and "+--[ED25519  256]----+" in text
    ours, theirs = scan_both(tmp_path, RESTRICTED, "ssh-hostkey", extra=("-v",), name="v")
    text, _ = assert_same(ours, theirs, (RESTRICTED, "ssh-hostkey"))
    assert text.endswith(f"  {key['bits']} {key['md5']} (ED25519)\nssh-ed25519 {key['blob']}")
    # words it does not know: an empty line per key
    ours, theirs = scan_both(tmp_path, RESTRICTED, "ssh-hostkey", args="ssh_hostkey=bogus",
                             name="bogus")
    text, _ = assert_same(ours, theirs, (RESTRICTED, "ssh-hostkey"))
    assert text == "\n  \n  "


# -- known_hosts ---------------------------------------------------------------------------------

def test_known_hosts_without_entry_matches_nmap(servers, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(f"10.9.9.9 ssh-ed25519 {public_blob(servers['ed25519'])}\n")
    ours, theirs = scan_both(tmp_path, RESTRICTED, "ssh-hostkey",
                             args=f"ssh-hostkey.known-hosts={known}")
    text, tree = assert_same(ours, theirs, (RESTRICTED, "ssh-hostkey"))
    assert text.endswith("\n  Key comparison with known_hosts file: No entry for scanned host "
                         "found in known_hosts file.")
    assert ("Key comparison with known_hosts file",
            "No entry for scanned host found in known_hosts file.") in tree


def test_known_hosts_comparison(servers, tmp_path):
    """Nmap 7.93 raises an error as soon as the file has an entry for the host; ours reports
    which lines match the keys found and which record another key of a type found."""
    other = make_keys(tmp_path / "other", ("ed25519",))
    salt = bytes(range(20))
    digest = hmac.new(salt, RESTRICTED.encode(), hashlib.sha1).digest()
    hashed = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"
    known = tmp_path / "known_hosts"
    known.write_text(f"# recorded keys\n"
                     f"{RESTRICTED},other ecdsa-sha2-nistp256 "
                     f"{public_blob(servers['ecdsa'])} good\n"
                     f"{hashed} ssh-ed25519 {public_blob(other['ed25519'])} stale\n"
                     f"127.0.0.9 ssh-ed25519 {public_blob(servers['ed25519'])}\n"
                     f"[{RESTRICTED}]:2222 ssh-ed25519 {public_blob(servers['ed25519'])}\n")
    result = run_nsecluster("scan", "-sT", "-n", "-Pn", "-p", "22", RESTRICTED, "--script",
                            "ssh-hostkey", "--script-args",
                            f"ssh-hostkey.known-hosts,ssh-hostkey.known-hosts-path={known}",
                            "-oX", str(tmp_path / "ours.xml"), timeout=120)
    assert result.returncode == 0, result.stderr
    text, tree = results(tmp_path / "ours.xml")[(RESTRICTED, "ssh-hostkey")]
    assert text.endswith("\n  Key comparison with known_hosts file: \n"
                         "    GOOD Matches in known_hosts file: \n"
                         f"      L2: {RESTRICTED},other ecdsa-sha2-nistp256\n"
                         "    WRONG Matches in known_hosts file: \n"
                         f"      L3: {hashed} ssh-ed25519")
    comparison = dict(dict(tree)["Key comparison with known_hosts file"])
    assert comparison == {
        "GOOD Matches in known_hosts file": [(None, f"L2: {RESTRICTED},other "
                                                    "ecdsa-sha2-nistp256")],
        "WRONG Matches in known_hosts file": [(None, f"L3: {hashed} ssh-ed25519")]}


# -- robustness ----------------------------------------------------------------------------------

def test_garbage_servers_give_no_error(tmp_path):
    banner = b"SSH-2.0-Fake_1.0\r\n"
    simple = kexinit(kex="k", hostkey="h", enc_cs="e", enc_sc="e", mac_cs="m", mac_sc="m",
                     comp_cs="none", comp_sc="none")
    differ = kexinit(kex="k1,k2", hostkey="ssh-rsa", enc_cs="a,b", enc_sc="b,a", mac_cs="m",
                     mac_sc="m", comp_cs="none", comp_sc="none,zlib")
    plans = {
        "127.0.0.53": [banner, packet2(differ)],
        "127.0.0.54": [banner + bytes(range(256)) * 4],
        "127.0.0.55": byte_chunks(banner + packet2(kexinit(kex="a,a,,b", hostkey=","))),
        "127.0.0.56": [b"\xff\xfe garbage without a line end" * 20],
        "127.0.0.57": [b"SSH-1.5-Fake_1.0\n", ssh1_public_key(65537, SSH1_MODULUS)],
        # an IGNORE message before the KEXINIT; lines before the version line
        "127.0.0.58": [banner, packet2(b"\x02" + ssh_string("padding")) + packet2(simple)],
        "127.0.0.59": [b"Welcome\r\n" + banner, packet2(simple)],
    }
    servers = [FakeSsh(address, chunks, port=22, gap_s=0.05 if len(chunks) == 2 else 0.0005,
                       linger_s=0.5) for address, chunks in plans.items()]
    try:
        ours, theirs = scan_both(tmp_path, "127.0.0.53-59", "ssh-hostkey,ssh2-enum-algos")
    finally:
        for server in servers:
            server.close()
    assert not any("ERROR" in (text or "") for text, _ in ours.values())
    for address in plans:
        if address != "127.0.0.57":
            assert (address, "ssh-hostkey") not in ours
    # An SSH-1 server: its RSA key, in every format Nmap shows.
    text, tree = assert_same(ours, theirs, ("127.0.0.57", "ssh-hostkey"))
    exponent, modulus = (65537).to_bytes(3, "big"), SSH1_MODULUS.to_bytes(128, "big")
    assert text == f"\n  1024 {hashlib.md5(modulus + exponent).hexdigest()} (RSA1)"
    assert canonical(tree) == [(None, [("bits", "1024"),
                                       ("fingerprint", hashlib.md5(modulus + exponent).hexdigest()),
                                       ("key", f"65537 {SSH1_MODULUS}"), ("type", "rsa1")])]
    # A KEXINIT with different lists per direction: both tools show them apart.
    text, _ = assert_same(ours, theirs, ("127.0.0.53", "ssh2-enum-algos"))
    assert "  encryption_algorithms_client_to_server: (2)\n      a\n      b\n" in text
    assert "  compression_algorithms_server_to_client: (2)\n      none\n      zlib" in text
    # Empty names and lists, delivered a byte at a time.
    text, _ = assert_same(ours, theirs, ("127.0.0.55", "ssh2-enum-algos"))
    assert text.startswith("\n  kex_algorithms: (4)\n      a\n      a\n      \n      b\n"
                           "  server_host_key_algorithms: (2)\n      \n      \n"
                           "  encryption_algorithms: (0)\n      \n")
    assert ("127.0.0.54", "ssh2-enum-algos") not in ours
    assert ("127.0.0.56", "ssh2-enum-algos") not in ours
    # Nmap 7.93 fails on these two (an error for the IGNORE message, nothing after a line
    # before the version line, which RFC 4253 section 4.2 allows); ours lists the algorithms.
    simple_text = ("\n  kex_algorithms: (1)\n      k\n  server_host_key_algorithms: (1)\n      h\n"
                   "  encryption_algorithms: (1)\n      e\n  mac_algorithms: (1)\n      m\n"
                   "  compression_algorithms: (1)\n      none")
    assert theirs[("127.0.0.58", "ssh2-enum-algos")][0].startswith("ERROR")
    assert ("127.0.0.59", "ssh2-enum-algos") not in theirs
    for address in ("127.0.0.58", "127.0.0.59"):
        assert ours[(address, "ssh2-enum-algos")][0] == simple_text
