"""Version detection (-sV): probe open TCP ports and match the answers against the probe file.

How this works. ``PortProbing`` is the sans-IO core for one port: it decides which probe to
send next and on which connection, and what each answer means; the ``VersionScan`` driver
does the I/O on the worker's event loop, many ports at once, through nsock sockets.

For one port, as Nmap does:
- Connect and send nothing (the NULL probe): many services greet first. Data is matched as it
  arrives against the probe's match lines; a hard match ends the port.
- A connection the service closes without a word within the NULL probe's ``tcpwrappedms`` is
  "tcpwrapped". A NULL probe that hears nothing by its ``totalwaitms`` hands its connection to
  the next probe; every later probe gets a connection of its own.
- Next come the probes whose ``ports`` (``sslports`` inside TLS) list the port, then the rest in
  file order whose ``rarity`` is within the intensity. A probe's answer is matched against its
  own lines, then its ``fallback`` probes' lines, then the NULL probe's.
- A soft match names the service but goes on, with only the probes that have a line for that
  service, and only that service's lines.
- A hard match on "ssl" starts over inside TLS; the result then carries ``tunnel="ssl"``.
- A port that answered something but matched nothing gets a service fingerprint (the answers,
  escaped, in Nmap's SF format) for the user to submit.
"""
from __future__ import annotations

import dataclasses
import platform
import socket
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass

from worker.nsock.sockets import NsockSocket
from worker.protocol import HostResult, Service
from worker.scan.probes import Probe, ProbeDatabase, Rule, probe_database

WRAPPED_CONF = 8
MAX_RESPONSE = 1 << 16  # bytes kept per answer; Nmap keeps about as much
MAX_PARALLEL_PORTS = 256
NMAP_VERSION_IN_FP = "7.93"  # the SF format's V= field: the format version we write


# ------------------------------------------------------------------------------ matching core

@dataclass(slots=True)
class Match:
    """A line that matched: what it says about the service, and where it is."""

    info: Service  # name and version fields, as a probed, confidence-10 result
    soft: bool
    probe: str = ""  # the probe whose answer matched
    line: int = 0
    owner: str = ""  # the probe whose line it is (a fallback's, or NULL's)

    @property
    def service(self) -> str:
        return self.info.name


def _group(match, number: int) -> bytes:
    try:
        value = match.group(number)
    except Exception:  # IndexError, or pcre2's own error for a missing group
        return b""
    return value or b""


def _printable(data: bytes) -> str:
    return "".join(chr(b) for b in data if 0x20 <= b < 0x7F)


def _latin(data: bytes) -> str:
    return data.decode("latin-1")


def _split_args(text: str) -> list[str]:
    """``1,"a","b"`` -> [1, a, b]: commas outside double quotes split."""
    parts, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [p[1:-1] if len(p) >= 2 and p[0] == p[-1] == '"' else p for p in parts]


def substitute(template: str, match) -> str:
    """A version field with ``$1``, ``$P(1)``, ``$SUBST(1,"a","b")`` and ``$I(1,">")`` filled
    in from ``match``'s groups."""
    if "$" not in template:
        return template
    out, i, size = [], 0, len(template)
    while i < size:
        char = template[i]
        if char != "$" or i + 1 >= size:
            out.append(char)
            i += 1
            continue
        following = template[i + 1]
        if following.isdigit():
            out.append(_latin(_group(match, int(following))))
            i += 2
            continue
        for name in ("P(", "SUBST(", "I("):
            if template.startswith(name, i + 1):
                end = template.find(")", i + 1 + len(name))
                if end < 0:
                    break
                args = _split_args(template[i + 1 + len(name):end])
                out.append(_helper(name[:-1], args, match))
                i = end + 1
                break
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _helper(name: str, args: list[str], match) -> str:
    try:
        data = _group(match, int(args[0]))
    except (ValueError, IndexError):
        return ""
    if name == "P":
        return _printable(data)
    if name == "SUBST" and len(args) == 3:
        return _latin(data).replace(args[1], args[2])
    if name == "I" and len(args) == 2 and data:
        return str(int.from_bytes(data, "little" if args[1] == "<" else "big"))
    return ""


def apply_rule(rule: Rule, found, probe_name: str) -> Match:
    fields, cpes = rule.template
    values = {key: substitute(value, found) for key, value in fields.items()}
    info = Service(
        name=rule.service, method="probed", conf=10,
        product=values.get("p") or None, version=values.get("v") or None,
        extrainfo=values.get("i") or None, hostname=values.get("h") or None,
        ostype=values.get("o") or None, devicetype=values.get("d") or None,
        cpe=_one_cpe_per_part("cpe:/" + substitute(c, found) for c in cpes))
    return Match(info, rule.soft, probe_name, rule.line, rule.probe or probe_name)


def _one_cpe_per_part(cpes) -> list[str]:
    """As Nmap reports them: one CPE per part (a, h, o), the line's last of each, in that
    order (an OpenSSH line naming both debian_linux and linux_kernel reports the latter)."""
    by_part: dict[str, str] = {}
    for cpe in cpes:
        part = cpe[5:6]
        if part in ("a", "h", "o"):
            by_part[part] = cpe
    return [by_part[p] for p in ("a", "h", "o") if p in by_part]


def rules_for(probe: Probe, null: Probe | None):
    """The lines an answer to ``probe`` is checked against, in order."""
    yield from probe.rules
    seen = {id(probe)}
    for other in probe.fallbacks:
        if id(other) not in seen:
            seen.add(id(other))
            yield from other.rules
    if null is not None and probe.protocol == "TCP" and id(null) not in seen:
        yield from null.rules


def match_response(probe: Probe, null: Probe | None, data: bytes,
                   only_service: str | None = None) -> Match | None:
    """The first hard match of ``data``, else the first soft match, else None. With
    ``only_service`` (after a soft match), only that service's lines count."""
    if not data:
        return None
    soft: Match | None = None
    for rule in _candidates(probe, null, data[0]):
        if only_service is not None and rule.service != only_service:
            continue
        if soft is not None and (rule.soft or rule.service != soft.service):
            continue
        found = rule.search(data)
        if found is None:
            continue
        result = apply_rule(rule, found, probe.name)
        if not rule.soft:
            return result
        soft = result
    return soft


def _candidates(probe: Probe, null: Probe | None, first: int) -> tuple:
    """The lines of ``rules_for(probe, null)`` that a response starting with ``first`` can
    match, in order (a NULL answer is checked against 4,000 lines: most start with a fixed
    byte). Cached on the probe, so it goes with its database."""
    key = (id(null), first)
    found = probe.candidates.get(key)
    if found is None or found[0] is not null:  # (holding null keeps its id its own)
        found = probe.candidates[key] = (null, tuple(
            r for r in rules_for(probe, null) if r.first_bytes is None or first in r.first_bytes))
    return found[1]


def probe_order(db: ProbeDatabase, port: int, intensity: int, ssl: bool) -> list[Probe]:
    """The probes after NULL for ``port``: those that list it first, then the others within
    ``intensity``, each group in file order."""
    listed, others = [], []
    for probe in db.probes:
        if probe.protocol != "TCP" or probe.is_null:
            continue
        if port in probe.ports or (ssl and port in probe.sslports):
            listed.append(probe)
        elif probe.rarity <= intensity:
            others.append(probe)
    return listed + others


def can_match(probe: Probe, service: str) -> bool:
    return any(r.service == service and not r.soft for r in probe.rules) or any(
        r.service == service and not r.soft for f in probe.fallbacks for r in f.rules)


# ------------------------------------------------------------------------------ one port

@dataclass(slots=True)
class Step:
    """What the driver does next for a port: ``connect`` (a new connection, TLS when ``ssl``),
    then send ``payload`` (maybe empty) and read for ``wait_ms``; or ``send`` on the
    connection it has; or ``done``."""

    kind: str
    payload: bytes = b""
    wait_ms: int = 0
    ssl: bool = False


DONE = Step("done")


class PortProbing:
    def __init__(self, db: ProbeDatabase, address: str, port: int, intensity: int,
                 trace: Callable[[str], None] | None = None):
        self.db, self.address, self.port, self.intensity = db, address, port, intensity
        self.null = db.null
        self.trace = trace
        self.ssl = False
        self.result: Match | None = None  # the hard match, once there is one
        self.soft: Match | None = None
        self.wrapped = False
        self.responses: list[tuple[str, bytes]] = []  # (probe name, answer) for the fingerprint
        self._queue: list[Probe] = []
        self.current: Probe | None = None
        self.response = bytearray()
        self.started_ms = 0.0

    # -- the probe sequence ----------------------------------------------------------------
    def start(self) -> Step:
        self._queue = probe_order(self.db, self.port, self.intensity, self.ssl)
        self._queue.reverse()  # popped from the end
        if self.null is not None:
            return self._begin(self.null, new_connection=True)
        return self._next(new_connection=True)

    def _begin(self, probe: Probe, new_connection: bool) -> Step:
        self.current = probe
        self.response = bytearray()
        if self.trace:
            self.trace(f"Service scan sending probe {probe.name} to {self.address}:"
                       f"{self.port} (tcp)")
        if new_connection:
            return Step("connect", probe.payload, probe.totalwait_ms, self.ssl)
        return Step("send", probe.payload, probe.totalwait_ms)

    def _next(self, new_connection: bool) -> Step:
        while self._queue:
            probe = self._queue.pop()
            if self.soft is not None and not can_match(probe, self.soft.service):
                continue
            return self._begin(probe, new_connection)
        self.current = None
        return DONE

    # -- events ----------------------------------------------------------------------------
    def on_connected(self, now_ms: float) -> None:
        self.started_ms = now_ms

    def on_data(self, data: bytes) -> Step | None:
        """New bytes of the current probe's answer: a Step when that settles the port (or
        the probe), None to keep reading."""
        room = MAX_RESPONSE - len(self.response)
        if room > 0:
            self.response += data[:room]
        found = match_response(self.current, self.null, bytes(self.response),
                               self.soft.service if self.soft else None)
        if found is None:
            return None
        if found.soft:
            if self.soft is None:
                self.soft = found
                self._trace_match("soft match", found, found.service)
            return None
        return self._hard(found)

    def _hard(self, found: Match) -> Step:
        if found.service == "ssl" and not self.ssl:
            self._trace_match("hard match", found, "ssl")
            self.ssl = True
            self.soft = None
            self.responses.clear()
            return self.start()
        self.result = found
        if self.trace:
            info = found.info
            shown = "|".join(v or "" for v in (info.product, info.version, info.extrainfo))
            self._trace_match("match", found, f"{'SSL/' if self.ssl else ''}{found.service}."
                                              f"  Version: |{shown}|")
        return DONE

    def _trace_match(self, kind: str, found: Match, what: str) -> None:
        """--version-trace's line for a match: the probe sent, and whose line matched."""
        if self.trace:
            self.trace(f"Service scan {kind} (Probe {found.probe} matched with {found.owner} "
                       f"line {found.line}): {self.address}:{self.port} is {what}")

    def on_timeout(self) -> Step:
        """The current probe's wait is over."""
        got = bool(self.response)
        self._keep_response()
        # A NULL probe that heard nothing leaves its quiet connection to the next probe.
        reuse = self.current is not None and self.current.is_null and not got
        return self._next(new_connection=not reuse)

    def on_eof(self, now_ms: float) -> Step:
        """The service closed the connection (or it failed) during the current probe."""
        probe = self.current
        if (probe is not None and probe.is_null and not self.response and not self.ssl
                and now_ms - self.started_ms < probe.tcpwrapped_ms):
            self.wrapped = True
            return DONE
        self._keep_response()
        return self._next(new_connection=True)

    def on_connect_failed(self) -> Step:
        return self._next(new_connection=True)

    def _keep_response(self) -> None:
        if self.response and self.current is not None:
            self.responses.append((self.current.name, bytes(self.response)))

    # -- the outcome -----------------------------------------------------------------------
    def service(self, table: Service | None, fingerprint: Callable[["PortProbing"], str]
                ) -> Service | None:
        """This port's Service: probed when something matched, else the table's guess with
        the fingerprint of what the port said (if anything)."""
        tunnel = "ssl" if self.ssl else None
        found = self.result or self.soft
        if found is not None:
            return dataclasses.replace(found.info, tunnel=tunnel, cpe=list(found.info.cpe))
        if self.wrapped:
            return Service(name="tcpwrapped", method="probed", conf=WRAPPED_CONF)
        if self.responses or self.ssl:  # (inside TLS, Nmap reports "ssl/" + the table's name)
            name = table.name if table is not None else "unknown"
            return Service(name=name, method="table", conf=3, tunnel=tunnel,
                           servicefp=fingerprint(self) if self.responses else None)
        return table


# ------------------------------------------------------------------------------ fingerprint

_FP_ESCAPES = {0x0D: "\\r", 0x0A: "\\n", 0x09: "\\t", 0x00: "\\0"}
_FP_ESCAPES.update((ord(c), "\\" + c) for c in '"$()*+.?[\\]^|')  # (observed: not {})


def escape_fp(data: bytes) -> str:
    """Bytes as the SF format writes them (observed): printable ASCII as is, except space
    (``\\x20``) and ``"`` plus the regex metacharacters, which get a backslash; ``\\r``,
    ``\\n``, ``\\t``, ``\\0``; ``\\xHH`` for the rest."""
    out = []
    for b in data:
        special = _FP_ESCAPES.get(b)
        if special is not None:
            out.append(special)
        elif 0x20 < b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def _platform() -> str:
    """The SF format's P= field, the build triplet as config.guess names it
    (``x86_64-pc-linux-gnu``, ``aarch64-unknown-linux-gnu``)."""
    multiarch = sysconfig.get_config_var("MULTIARCH")  # x86_64-linux-gnu on Debian builds
    if multiarch and multiarch.count("-") == 2:
        machine, system, abi = multiarch.split("-")
    else:
        machine, system = platform.machine(), platform.system().lower()
        abi = "gnu" if system == "linux" else ""
    vendor = "pc" if machine in ("x86_64", "i386", "i486", "i586", "i686") else "unknown"
    return "-".join(part for part in (machine, vendor, system, abi) if part)


PLATFORM = _platform()


def service_fingerprint(probing: PortProbing, intensity: int, when: float | None = None,
                        platform: str = PLATFORM) -> str:
    """The port's fingerprint, unwrapped (outputs cut it into ``SF:`` lines)."""
    when = time.time() if when is None else when
    stamp = time.gmtime(when)
    head = (f"SF-Port{probing.port}-TCP:V={NMAP_VERSION_IN_FP}%I={intensity}"
            f"%D={stamp.tm_mon}/{stamp.tm_mday}%Time={int(when):X}%P={platform}")
    if probing.ssl:
        head += "%T=SSL"
    parts = [head]
    for name, data in probing.responses:
        parts.append(f"%r({name},{len(data):X},\"{escape_fp(data)}\")")
    return "".join(parts) + ";"


# ------------------------------------------------------------------------------ the driver

def ports_to_probe(hosts: list[HostResult]) -> list[tuple[HostResult, object]]:
    return [(host, port) for host in hosts for port in host.ports
            if port.protocol == "tcp" and port.state == "open"]


class VersionScan:
    """Runs PortProbing for every open TCP port of ``hosts`` on ``loop``, at most
    MAX_PARALLEL_PORTS at a time, and sets each port's ``service``."""

    def __init__(self, loop, hosts: list[HostResult], db: ProbeDatabase, intensity: int,
                 trace: Callable[[str], None] | None = None):
        self.loop, self.db, self.intensity, self.trace = loop, db, intensity, trace
        self.pending = ports_to_probe(hosts)
        self.pending = [item for item in self.pending
                        if ("TCP", item[1].portid) not in db.excluded]
        self.pending.reverse()
        self.active = 0

    def run(self) -> None:
        self._fill()
        self.loop.run_until(lambda: self.active == 0 and not self.pending)

    def _fill(self) -> None:
        while self.pending and self.active < MAX_PARALLEL_PORTS:
            host, port = self.pending.pop()
            self.active += 1
            _PortRun(self, host, port).go()

    def _finished(self, run: "_PortRun") -> None:
        run.port.service = run.probing.service(
            run.port.service, lambda p: service_fingerprint(p, self.intensity))
        self.active -= 1
        self._fill()


class _PortRun:
    """The I/O of one PortProbing: one nsock socket at a time."""

    def __init__(self, scan: VersionScan, host: HostResult, port):
        self.scan, self.host, self.port = scan, host, port
        self.loop = scan.loop
        self.probing = PortProbing(scan.db, host.address, port.portid, scan.intensity,
                                   scan.trace)
        self.sock = None
        self.deadline_ms = 0.0
        self.generation = 0  # callbacks of an earlier connection are ignored

    def go(self) -> None:
        self._do(self.probing.start())

    def _do(self, step: Step) -> None:
        if step.kind == "done":
            self._close()
            self.scan._finished(self)
            return
        self.deadline_ms = self.loop.now_ms() + step.wait_ms
        if step.kind == "connect":
            self._close()
            generation = self.generation
            family = socket.AF_INET6 if ":" in self.host.address else socket.AF_INET
            self.sock = NsockSocket(self.loop, timeout_ms=step.wait_ms, family=family)
            self.sock.connect(self.host.address, self.port.portid,
                              "ssl" if step.ssl else "tcp",
                              lambda status, value: self._connected(generation, status, step))
        else:
            self._send(step.payload)

    def _connected(self, generation: int, status, step: Step) -> None:
        if generation != self.generation:
            return
        if status is not None:
            self._do(self.probing.on_connect_failed())
            return
        self.probing.on_connected(self.loop.now_ms())
        self.deadline_ms = self.loop.now_ms() + step.wait_ms
        self._send(step.payload)

    def _send(self, payload: bytes) -> None:
        generation = self.generation
        if payload:
            self.sock.send(payload, lambda status, value: None)
        self._read(generation)

    def _read(self, generation: int) -> None:
        remaining = self.deadline_ms - self.loop.now_ms()
        if remaining <= 0:
            self._do(self.probing.on_timeout())
            return
        self.sock.receive(lambda status, value: self._received(generation, status, value),
                          timeout_ms=max(1, int(remaining)))

    def _received(self, generation: int, status, value) -> None:
        if generation != self.generation:
            return
        if status is None:
            step = self.probing.on_data(bytes(value))
            if step is None:
                self._read(generation)
            else:
                self._do(step)
        elif status == "TIMEOUT":
            self._do(self.probing.on_timeout())
        else:  # EOF, ERROR
            self._do(self.probing.on_eof(self.loop.now_ms()))

    def _close(self) -> None:
        self.generation += 1  # what the old socket still delivers (CANCELLED) is not ours
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def detect_versions(loop, hosts: list[HostResult], options, log=None) -> None:
    """The worker's entry point: -sV for ``hosts`` with ``options.version``."""
    version = options.version
    db = probe_database(options.datadir)
    trace = None
    if version.trace:
        trace = log if log is not None else (lambda line: print(line, flush=True))
    VersionScan(loop, hosts, db, version.intensity, trace).run()
