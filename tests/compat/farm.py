"""A farm of realistic loopback services for running Nmap's own scripts (Debian's
/usr/share/nmap) with both nmap and nsecluster, and the batch comparison of their XML.

Hosts (127.201.0.0/24, used by no other test):
  .1   21 FTP (anonymous), 22 a real sshd (RSA, ECDSA and Ed25519 host keys), 25 SMTP with EHLO extensions, 80 a full web site,
       443 the same site over TLS, 993 a TLS-wrapped line service, 6379 a real
       redis-server, 11211 a real memcached
  .2   80 a site asking for Basic auth at /, 8080 one asking for Digest auth, with NTLM
       offered too
and, in a batch of their own, the machine's MariaDB (127.0.0.1:3306, root without a
password) and RabbitMQ (127.0.0.1:5672).

``python tests/compat/farm.py`` starts the farm and waits (for exploring by hand).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from banner_peer import stop_process  # noqa: E402
from ftp_peer import FtpPeer  # noqa: E402
from http_peer import Site, page, redirect, response  # noqa: E402
from smtp_peer import SmtpPeer  # noqa: E402
from ssh_peer import Sshd, make_keys  # noqa: E402
from tcp_peer import TcpServer  # noqa: E402
from tls_peer import make_certificate, server_context  # noqa: E402

MAIN = "127.201.0.1"
AUTH = "127.201.0.2"
TARGETS = (MAIN, AUTH)
PORTS = "21,22,25,80,443,993,6379,8080,11211"
NMAP_DATADIR = "/usr/share/nmap"

# A 16x16 icon; the bytes matter only in that both tools hash the same ones.
FAVICON = bytes(range(256)) * 4

HOME = """<!DOCTYPE html>
<html><head>
<title>Compat Farm Home</title>
<meta name="generator" content="WordPress 5.8.1" />
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<link rel="icon" href="/favicon.ico">
<!-- TODO: remove the debug login at /admin/ before release -->
</head><body>
<h1>Welcome</h1>
<p>Contact <a href="mailto:admin@farm.test">admin@farm.test</a>,
internal build host 10.20.30.40.</p>
<a href="/about.html">About</a> <a href="/docs/">Docs</a>
<a href="/login.php">Login</a>
<form action="/search" method="get"><input name="q" type="text"></form>
<form action="/login.php" method="post"><input name="user"><input name="password"
 type="password"></form>
<script src="/js/app.js"></script>
</body></html>"""

ABOUT = """<html><head><title>About the farm</title></head><body>
<!-- about page, version 2 -->
<a href="/">Home</a> <a href="/docs/">Docs</a></body></html>"""

DOCS = """<html><head><title>Index of /docs</title></head><body><h1>Index of /docs</h1>
<pre><a href="?C=N;O=D">Name</a> <a href="?C=M;O=A">Last modified</a> <a href="?C=S;O=A">Size</a>
<hr><a href="/">Parent Directory</a>                             -
<a href="guide.txt">guide.txt</a>               12-Mar-2021 10:11  1.2K
<a href="notes.pdf">notes.pdf</a>               02-Jan-2022 08:00  240K
<hr></pre></body></html>"""

ROBOTS = """User-agent: *
Disallow: /admin/
Disallow: /private/
Disallow: /cgi-bin/
Disallow: /backup.tar.gz
"""

GIT_HEAD = "ref: refs/heads/main\n"
GIT_CONFIG = """[core]
\trepositoryformatversion = 0
\tfilemode = true
\tbare = false
[remote "origin"]
\turl = https://git.farm.test/web/site.git
\tfetch = +refs/heads/*:refs/remotes/origin/*
"""
GIT_DESCRIPTION = "The farm's web site\n"

COMMON_HEADERS = (
    "Server: Apache/2.4.41 (Ubuntu)",
    "X-Powered-By: PHP/7.4.3",
    "Set-Cookie: PHPSESSID=farm0session; path=/",
    "X-Frame-Options: SAMEORIGIN",
    "Date: Fri, 27 Nov 2026 04:00:00 GMT",
)


def _html(body: str, status: str = "200 OK", headers=()) -> bytes:
    return page(body, headers=(*COMMON_HEADERS, *headers), status=status)


def site_routes() -> dict:
    allow = response("200 OK", headers=(*COMMON_HEADERS,
                                        "Allow: GET,HEAD,POST,OPTIONS,TRACE,PUT,DELETE"),
                     content_type=None)
    home = _html(HOME)

    def trace(request):
        return response("200 OK", headers=COMMON_HEADERS, body=request.raw,
                        content_type="message/http")

    return {
        "/": {"GET": home, "HEAD": home, "POST": home, "OPTIONS": allow, "TRACE": trace,
              "*": _html("<html><body>method</body></html>", "405 Method Not Allowed")},
        "/index.html": home,
        "/about.html": _html(ABOUT),
        "/docs/": _html(DOCS),
        "/docs": redirect("/docs/", "301 Moved Permanently", COMMON_HEADERS),
        "/old": redirect("/about.html", "301 Moved Permanently", COMMON_HEADERS),
        "/login.php": _html("<html><head><title>Login</title></head><body><form method="
                            "'post'><input name='user'><input type='password' name='pass'>"
                            "</form></body></html>",
                            headers=("Set-Cookie: session=abc123; path=/",)),
        "/robots.txt": response("200 OK", COMMON_HEADERS, ROBOTS, content_type="text/plain"),
        "/favicon.ico": response("200 OK", COMMON_HEADERS, FAVICON,
                                 content_type="image/x-icon"),
        "/.git/HEAD": response("200 OK", COMMON_HEADERS, GIT_HEAD, content_type="text/plain"),
        "/.git/config": response("200 OK", COMMON_HEADERS, GIT_CONFIG,
                                 content_type="text/plain"),
        "/.git/description": response("200 OK", COMMON_HEADERS, GIT_DESCRIPTION,
                                      content_type="text/plain"),
        "/server-status": _html("<html><head><title>Apache Status</title></head><body>"
                                "<h1>Apache Server Status for farm.test</h1><dl>"
                                "<dt>Server Version: Apache/2.4.41 (Ubuntu)</dt>"
                                "<dt>Server MPM: event</dt>"
                                "<dt>Server Built: 2020-08-12T19:46:17</dt>"
                                "<dt>Current Time: Friday, 27-Nov-2026 04:00:00 UTC</dt>"
                                "<dt>Restart Time: Friday, 27-Nov-2026 03:00:00 UTC</dt>"
                                "<dt>Server uptime:  1 hour</dt>"
                                "<dt>Total accesses: 42 - Total Traffic: 1 MB</dt>"
                                "</dl></body></html>"),
        "/crossdomain.xml": response("200 OK", COMMON_HEADERS,
                                     '<?xml version="1.0"?><cross-domain-policy>'
                                     '<allow-access-from domain="*" /></cross-domain-policy>',
                                     content_type="text/xml"),
        "/js/app.js": response("200 OK", COMMON_HEADERS, "var x = 1; // app\n",
                               content_type="application/javascript"),
    }


def basic_routes() -> dict:
    ask = response("401 Unauthorized",
                   ("Server: nginx/1.18.0", 'WWW-Authenticate: Basic realm="Farm Admin"'),
                   "<html><head><title>401 Authorization Required</title></head></html>")
    return {"/": ask, "/robots.txt": ask}


def digest_routes() -> dict:
    ask = response("401 Unauthorized",
                   ("Server: Microsoft-IIS/10.0",
                    'WWW-Authenticate: Digest realm="farm@digest", qop="auth", '
                    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
                    'opaque="5ccc069c403ebaf9f0171e9517f40e41"',
                    "WWW-Authenticate: NTLM"),
                   "<html><head><title>Access denied</title></head></html>")

    return {"/": ask}


def _imaps_greeting(sock, context) -> None:
    """A TLS-wrapped line service (an IMAP server's greeting over TLS). A client that does
    not start TLS gets nothing for 30 s, longer than any script waits."""
    sock.settimeout(30)
    tls = context.wrap_socket(sock, server_side=True)
    try:
        tls.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] farm IMAP ready\r\n")
        tls.settimeout(5)
        tls.recv(4096)
        tls.sendall(b"* BYE\r\n")
    finally:
        tls.close()


@dataclass
class Farm:
    directory: Path
    stoppers: list = field(default_factory=list)

    def start(self) -> "Farm":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        cert, key, _ = make_certificate(self.directory, "farm", san=True)
        context = server_context(cert, key)
        context.set_alpn_protocols(["h2", "http/1.1"])
        self._own(FtpPeer(MAIN, 21, banner=b"220 (vsFTPd 3.0.3)\r\n", anonymous=True))
        self._own(SmtpPeer(MAIN, 25, banner=b"220 mail.farm.test ESMTP Postfix (Ubuntu)\r\n",
                           tls_context=context))
        self._own(Site(MAIN, 80, site_routes()))
        self._own(Site(MAIN, 443, site_routes(), tls=context))
        self._own(TcpServer(MAIN, 993, lambda sock: _imaps_greeting(sock, context)))
        self._own(Site(AUTH, 80, basic_routes()))
        self._own(Site(AUTH, 8080, digest_routes()))
        sshd = Sshd(self.directory / "sshd", MAIN, make_keys(self.directory))  # rsa, ecdsa,
        sshd.start()  # ed25519 host keys
        self.stoppers.append(sshd.stop)
        self._process(["redis-server", "--bind", MAIN, "--port", "6379", "--save", "",
                       "--appendonly", "no", "--protected-mode", "no",
                       "--dir", str(self.directory)], MAIN, 6379)
        self._process(["memcached", "-l", MAIN, "-p", "11211", "-U", "0", "-u", "root"],
                      MAIN, 11211)

    def _own(self, server) -> None:
        self.stoppers.append(server.close)

    def _process(self, command: list[str], address: str, port: int) -> None:
        assert shutil.which(command[0]), f"{command[0]} is required (.ci/setup installs it)"
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.stoppers.append(lambda: stop_process(proc))
        import socket

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((address, port), timeout=0.5):
                    return
            except OSError:
                assert proc.poll() is None, f"{command[0]} exited at once"
                time.sleep(0.05)
        raise AssertionError(f"{command[0]} did not start on {address}:{port}")

    def stop(self) -> None:
        for stop in reversed(self.stoppers):
            try:
                stop()
            except Exception:  # noqa: BLE001 -- stop the rest regardless
                pass
        self.stoppers.clear()


# The machine's own MariaDB (root, empty password) and RabbitMQ, in a batch of their own:
# 127.0.0.1 has other services of other tests on other ports.
MACHINE = "127.0.0.1"
MACHINE_PORTS = "3306,5672"
# (not mysql-variables: the server's timestamp, random seeds and connection number are in
# it, and where nmap's mysql.lua splits the reply, binary bytes and all, moves with them)
MACHINE_SCRIPTS = ("mysql-info", "mysql-empty-password", "mysql-users", "mysql-databases",
                   "amqp-info")
MACHINE_ARGS = ("--script-args", "mysqluser=root,mysqlpass=")

# Nmap's scripts the comparison runs (the first eleven must match).
REQUIRED = ("http-title", "http-headers", "http-methods", "http-robots.txt", "banner",
            "ftp-anon", "smtp-commands", "ssh-hostkey", "ssh2-enum-algos", "ssl-cert",
            "redis-info")
SCRIPTS = REQUIRED + (
    "memcached-info", "http-server-header", "http-date", "http-generator", "http-favicon",
    "http-auth", "http-auth-finder", "http-git", "http-cookie-flags", "http-comments-displayer",
    "http-trace", "http-php-version", "http-ntlm-info", "http-apache-server-status",
    "http-internal-ip-disclosure", "http-mobileversion-checker", "http-referer-checker",
    "http-cross-domain-policy", "http-ls", "http-useragent-tester", "http-devframework",
    "http-webdav-scan", "http-open-proxy", "http-security-headers", "http-errors",
    "http-fetch", "ftp-syst", "smtp-ntlm-info", "ssl-date", "sslv2", "tls-alpn",
    "tls-nextprotoneg", "ssl-known-key", "sshv1", "fingerprint-strings", "ssl-enum-ciphers",
    "http-sitemap-generator", "http-grep", "http-csrf", "http-feed", "http-dombased-xss",
    "http-stored-xss", "http-config-backup", "http-vhosts", "http-chrono", "http-traceroute",
    "smtp-enum-users", "smtp-open-relay",
)

@dataclass(frozen=True)
class Variance:
    """What differs between two runs of nmap itself for one script (found by running nmap
    three times on this farm and diffing): masked in both tools' results, nothing else is.

    ``lines``: output lines whose value part (after the regex's first group) varies, such as
    counters and clocks; ``keys``: element keys whose values vary; ``key_order``: the order
    of keyed elements (a plain Lua table's, that is hash order); ``line_order``: the order
    of output lines; ``item_order``: the order of all elements; ``word_order``: the order of words within a line."""

    lines: tuple[str, ...] = ()
    keys: frozenset[str] = frozenset()
    key_order: bool = False
    line_order: bool = False
    word_order: bool = False
    item_order: bool = False  # of every element, array items included
    key_ids: str | None = None  # a regex of keys numbered in the order threads finish
    lists: tuple[str, ...] = ()  # lines whose ", "-separated items come in any order


_COUNTERS = ("Used CPU \\(\\w+\\)", "Connected clients", "Used memory", "Uptime",
             "Server time", "Current connections", "Total connections")
NMAP_VARIANCE = {
    # the services' own clocks and counters
    "redis-info": Variance(lines=_COUNTERS, keys=frozenset(
        {"Used CPU (sys)", "Used CPU (user)", "Connected clients", "Used memory"})),
    "memcached-info": Variance(lines=_COUNTERS, keys=frozenset(
        {"Uptime", "Server time", "Used CPU (user)", "Used CPU (system)",
         "Current connections", "Total connections"})),
    # the scanner's clock against the server's fixed Date header, and request timings
    "http-date": Variance(lines=(".*GMT; ",), keys=frozenset({"delta"})),
    "http-chrono": Variance(lines=("Request times for /; ",)),
    # hash order of plain Lua tables
    "ssh-hostkey": Variance(key_order=True),
    "http-git": Variance(key_order=True),
    "ssl-enum-ciphers": Variance(key_order=True),
    "http-auth": Variance(key_order=True, word_order=True),
    "http-comments-displayer": Variance(line_order=True),
    # ... and the vulns library's report ids, numbered as threads happen to report
    "http-cross-domain-policy": Variance(line_order=True, item_order=True,
                                         key_ids=r"^NMAP-\d+$"),
    "http-grep": Variance(line_order=True, key_order=True),
    # the server's connection number and random salt, its capabilities in hash order
    "mysql-info": Variance(lines=("Thread ID", "Salt"), keys=frozenset({"Thread ID", "Salt"}),
                           lists=("Some Capabilities",), item_order=True),
    # which of two equally deep directories is "the longest" (hash order again)
    "http-sitemap-generator": Variance(lines=("\\s*Dir: ",)),
}


# ---------------------------------------------------------------------------------------------
# Running both tools and reading their results


@dataclass(frozen=True)
class Result:
    output: str
    structure: tuple

    def masked(self, variance: Variance | None) -> "Result":
        """This result without what ``variance`` says differs from one nmap run to the
        next."""
        if variance is None:
            return self
        return Result(_mask_text(self.output, variance),
                      _mask_tree(self.structure, variance))


def _mask_text(text: str, variance: Variance) -> str:
    lines = text.split("\n")
    for prefix in variance.lists:
        lines = [_sorted_list(line, prefix) for line in lines]
    for prefix in variance.lines:
        lines = [re.sub(f"^(\\s*(?:{prefix}):? ?).*$", r"\1<varies>", line)
                 for line in lines]
    if variance.word_order:
        lines = [" ".join(sorted(line.split(" "))) for line in lines]
    if variance.line_order:
        lines = sorted(lines)
    return "\n".join(lines)


def _sorted_list(line: str, prefix: str) -> str:
    found = re.match(f"^(\\s*(?:{prefix}): )(.*)$", line)
    if not found:
        return line
    return found.group(1) + ", ".join(sorted(found.group(2).split(", ")))


def _mask_tree(tree, variance: Variance):
    if variance.key_ids:
        tree = tuple((re.sub(variance.key_ids, "<id>", key) if key else key, value)
                     for key, value in tree)
    items = [(key, "<varies>" if key in variance.keys else
              value if isinstance(value, str) else _mask_tree(value, variance))
             for key, value in tree]
    if variance.item_order:
        items = sorted(items, key=repr)
    elif variance.key_order:  # array items keep their order, keyed ones are sorted
        items = [item for item in items if item[0] is None] + \
            sorted((item for item in items if item[0] is not None), key=repr)
    return tuple(items)


def _structure(element: ET.Element) -> tuple:
    items = []
    for child in element:
        if child.tag == "elem":
            items.append((child.get("key"), child.text or ""))
        elif child.tag == "table":
            items.append((child.get("key"), _structure(child)))
    return tuple(items)


def results(xml_path: Path) -> dict[tuple[str, str, str], Result]:
    """{(host, port or "host"/"pre"/"post", script id): Result} from an -oX file."""
    root = ET.parse(xml_path).getroot()
    found: dict = {}

    def take(host: str, where: str, parent) -> None:
        for element in parent.findall("script"):
            found[(host, where, element.get("id"))] = Result(element.get("output") or "",
                                                             _structure(element))

    for place, where in (("prescript", "pre"), ("postscript", "post")):
        for element in root.findall(place):
            take("", where, element)
    for host in root.findall("host"):
        address = host.find("address").get("addr")
        for port in host.iter("port"):
            take(address, f"{port.get('protocol')}/{port.get('portid')}", port)
        for element in host.findall("hostscript"):
            take(address, "host", element)
    return found


def scan_command(tool: list[str], xml_path: Path, scripts=SCRIPTS, targets=TARGETS,
                 ports=PORTS, extra=()) -> list[str]:
    return [*tool, "-sT", "-n", "-Pn", "-p", ports, "--script", ",".join(dict.fromkeys(scripts)),
            "--datadir", NMAP_DATADIR, "-oX", str(xml_path), *extra, *targets]


@dataclass
class Comparison:
    matched: list[tuple[str, str, str]]
    mismatched: list[tuple[tuple[str, str, str], Result | None, Result | None]]

    @property
    def total(self) -> int:
        return len(self.matched) + len(self.mismatched)

    def per_script(self) -> dict[str, tuple[int, int]]:
        """{script: (matched, total)}"""
        counts: dict[str, list[int]] = {}
        for key in self.matched:
            counts.setdefault(key[2], [0, 0])[0] += 1
        for key, _, _ in self.mismatched:
            counts.setdefault(key[2], [0, 0])
        for key in [*self.matched, *(m[0] for m in self.mismatched)]:
            counts[key[2]][1] += 1
        return {name: (a, b) for name, (a, b) in sorted(counts.items())}

    def report(self, label: str = "ours") -> str:
        lines = [f"{len(self.matched)}/{self.total} (host, port, script) results match"]
        lines += [f"  {name}: {a}/{b}" for name, (a, b) in self.per_script().items()]
        for key, ours, theirs in self.mismatched:
            lines.append(f"MISMATCH {key}\n--- {label}:\n{_shown(ours)}\n--- nmap:\n"
                         f"{_shown(theirs)}")
        return "\n".join(lines)


def _shown(result: Result | None) -> str:
    if result is None:
        return "(no result)"
    return f"{result.output}\n(structure: {result.structure!r:.2000})"


def compare(ours: dict, theirs: dict) -> Comparison:
    """Every (host, port, script) result either tool gave, after masking Nmap's own
    variance."""
    done = Comparison([], [])
    for key in sorted(set(ours) | set(theirs)):
        variance = NMAP_VARIANCE.get(key[2])
        mine, reference = ours.get(key), theirs.get(key)
        if mine is not None and reference is not None and \
                mine.masked(variance) == reference.masked(variance):
            done.matched.append(key)
        else:
            done.mismatched.append((key, mine, reference))
    return done


if __name__ == "__main__":
    import signal
    import tempfile

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the children too
    farm = Farm(Path(tempfile.mkdtemp(prefix="compat-farm-"))).start()
    print("farm up:", TARGETS, PORTS, flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        farm.stop()
