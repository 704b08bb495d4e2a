"""The connect scanner and discovery against real listeners on loopback, and against silent
ports and hosts inside a private network namespace (iptables DROP there only)."""
import json
import socket
import subprocess
import sys

from conftest import REPO, free_port

from worker.group import run_group
from worker.nsock.loop import EventLoop
from worker.protocol import GroupJob, PortSet, ScanOptions, Target, Timing

FAST = Timing(level=4, initial_rtt_timeout_ms=300, min_rtt_timeout_ms=50,
              max_rtt_timeout_ms=300, max_retries=1)


def job(targets, ports, **options):
    opts = ScanOptions(ports=PortSet.from_ports(tcp=ports), reverse_dns="never",
                       timing=options.pop("timing", FAST), **options)
    return GroupJob("test", 0, tuple(Target(t) if isinstance(t, str) else t for t in targets),
                    opts)


def states(host):
    """Every port's (state, reason), whether reported one by one or in a bulk run."""
    found = {p.portid: (p.state, p.reason) for p in host.ports}
    for run in host.port_runs:
        for low, high in run.ranges:
            found.update((n, (run.state, run.reason)) for n in range(low, high + 1))
    return found


def test_open_and_closed_ports_with_reasons(listeners, monkeypatch):
    monkeypatch.setenv("NMAP_UNPRIVILEGED", "1")  # connect discovery, as without root
    open_a = listeners.listen("127.7.0.1")
    open_b = listeners.listen("127.7.0.1")
    closed = free_port("127.7.0.1")
    result = run_group(job(["127.7.0.1"], [open_a, open_b, closed]), loop=EventLoop())
    (host,) = result.hosts
    assert host.status == "up"
    assert host.reason in ("conn-refused", "syn-ack")
    assert states(host) == {open_a: ("open", "syn-ack"), open_b: ("open", "syn-ack"),
                            closed: ("closed", "conn-refused")}
    assert host.srtt_us is not None and host.srtt_us > 0


def test_listener_on_one_address_is_closed_on_another(listeners):
    port = listeners.listen("127.7.1.1")
    result = run_group(job(["127.7.1.1", "127.7.1.2"], [port]), loop=EventLoop())
    by_address = {h.address: states(h)[port][0] for h in result.hosts}
    assert by_address == {"127.7.1.1": "open", "127.7.1.2": "closed"}


def test_many_ports_many_hosts_exact(listeners):
    expected = {}
    for host in range(1, 41):
        address = f"127.7.2.{host}"
        ports = {listeners.listen(address) for _ in range(host % 3)}
        expected[address] = ports
    all_ports = sorted({p for ports in expected.values() for p in ports} | {1, 2, 3})
    result = run_group(job(list(expected), all_ports), loop=EventLoop())
    found = {h.address: {p.portid for p in h.ports if p.state == "open"} for h in result.hosts}
    assert found == expected


def test_all_ports_of_one_host(listeners):
    opened = {listeners.listen("127.7.3.1") for _ in range(25)}
    result = run_group(job(["127.7.3.1"], range(1, 65536), timing=Timing(level=4)),
                       loop=EventLoop())
    (host,) = result.hosts
    assert host.port_count == 65535 and len(states(host)) == 65535
    # The closed bulk travels as runs; open ports always one by one.
    assert [(r.state, r.reason) for r in host.port_runs] == [("closed", "conn-refused")]
    assert all(p.state == "open" for p in host.ports)
    found = {p.portid for p in host.ports if p.state == "open"}
    assert opened <= found
    # Other open ports can only be services of this machine listening on every address.
    for port in found - opened:
        with socket.create_connection(("127.7.3.1", port), timeout=2):
            pass


def test_no_ping_marks_hosts_user_set(listeners):
    port = listeners.listen("127.7.4.1")
    result = run_group(job(["127.7.4.1"], [port], host_discovery=False), loop=EventLoop())
    assert result.hosts[0].reason == "user-set"
    assert states(result.hosts[0])[port] == ("open", "syn-ack")


def test_ping_only_reports_up_hosts_without_ports():
    result = run_group(job(["127.7.5.1", "127.7.5.2"], [], scan_type="none"), loop=EventLoop())
    assert [(h.status, h.ports) for h in result.hosts] == [("up", []), ("up", [])]


def test_ipv6_loopback(listeners):
    port = listeners.listen("::1")
    closed = free_port("127.0.0.1")
    result = run_group(job(["::1"], [port, closed]), loop=EventLoop())
    (host,) = result.hosts
    assert host.status == "up"
    assert states(host)[port] == ("open", "syn-ack")


def test_a_target_given_twice_is_reported_twice_but_probed_once(listeners):
    port = listeners.listen("127.7.6.1")
    named = Target("127.7.6.1", targetname="twice.example")
    result = run_group(job(["127.7.6.1", named, "127.7.6.1"], [port]), loop=EventLoop())
    assert [(h.address, h.targetname) for h in result.hosts] == [
        ("127.7.6.1", None), ("127.7.6.1", "twice.example"), ("127.7.6.1", None)]
    assert all(states(h)[port] == ("open", "syn-ack") for h in result.hosts)
    assert result.hosts[0].ports is not result.hosts[2].ports  # scripts may change either
    listener = listeners.sockets[-1]
    listener.setblocking(False)
    accepted = 0
    for _ in range(5):
        try:
            listener.accept()[0].close()
        except BlockingIOError:
            break
        accepted += 1
    assert accepted == 1


# -- inside a private namespace: silence, down hosts, self-connects --------------------------

DRIVER = r"""
import json, sys
from worker.group import run_group
from worker.protocol import decode, encode, from_wire
job = from_wire(json.loads(sys.stdin.read()))
result = run_group(job)
out = [{"address": h.address, "status": h.status, "reason": h.reason, "timed_out": h.timed_out,
        "ports": {str(p.portid): [p.state, p.reason] for p in h.ports}} for h in result.hosts]
print(json.dumps(out))
"""


def run_in_netns(netns, group_job, timeout=60):
    from worker.protocol import to_wire
    proc = netns.run(sys.executable, "-c", DRIVER, input=json.dumps(to_wire(group_job)),
                     timeout=timeout, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                                           "NMAP_UNPRIVILEGED": "1"},  # connect discovery
                     check=False)
    assert proc.returncode == 0, proc.stderr
    return {h["address"]: h for h in json.loads(proc.stdout)}


def start_listener(netns, address, port):
    code = (f"import socket,time; s=socket.socket(); s.bind(({address!r},{port})); "
            f"s.listen(64); print('ready', flush=True); time.sleep(120)")
    proc = netns.popen(sys.executable, "-c", code, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_dropped_port_is_filtered_and_silent_host_is_down(netns):
    netns.run("iptables", "-A", "INPUT", "-d", "127.0.0.1", "-p", "tcp", "--dport", "9999",
              "-j", "DROP")
    netns.run("iptables", "-A", "INPUT", "-d", "127.0.0.77", "-j", "DROP")
    listener = start_listener(netns, "127.0.0.1", 9998)
    try:
        hosts = run_in_netns(netns, job(["127.0.0.1", "127.0.0.77"], [9997, 9998, 9999]))
    finally:
        listener.kill()
    assert hosts["127.0.0.1"]["status"] == "up"
    assert hosts["127.0.0.1"]["ports"] == {"9997": ["closed", "conn-refused"],
                                           "9998": ["open", "syn-ack"],
                                           "9999": ["filtered", "no-response"]}
    assert hosts["127.0.0.77"]["status"] == "down"
    assert hosts["127.0.0.77"]["reason"] == "no-response"


def test_no_ping_scans_a_silent_host_all_filtered(netns):
    netns.run("iptables", "-A", "INPUT", "-d", "127.0.0.78", "-j", "DROP")
    hosts = run_in_netns(netns, job(["127.0.0.78"], [1, 2], host_discovery=False))
    assert hosts["127.0.0.78"]["ports"] == {"1": ["filtered", "no-response"],
                                            "2": ["filtered", "no-response"]}


def test_host_timeout_gives_up_on_a_slow_host(netns):
    netns.run("iptables", "-A", "INPUT", "-d", "127.0.0.79", "-j", "DROP")
    slow = Timing(initial_rtt_timeout_ms=5000, min_rtt_timeout_ms=5000,
                  max_rtt_timeout_ms=5000, host_timeout_ms=500)
    hosts = run_in_netns(netns, job(["127.0.0.79"], range(1, 50), host_discovery=False,
                                    timing=slow), timeout=20)
    assert hosts["127.0.0.79"]["timed_out"] is True


def test_self_connect_is_not_an_open_port(netns):
    # With a one-port ephemeral range, connecting to that very port from loopback makes the
    # socket connect to itself (TCP simultaneous open): the handshake "succeeds" with nothing
    # listening. Nmap guards against reporting that as open; so must we.
    netns.run("sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=40000 40000")
    hosts = run_in_netns(netns, job(["127.0.0.1"], [40000], host_discovery=False))
    assert hosts["127.0.0.1"]["ports"]["40000"][0] == "closed"


def accepted_count(listener_socket):
    """Connections waiting in a listener's accept queue (the scan's, reset or not)."""
    listener_socket.setblocking(False)
    count = 0
    for _ in range(1000):
        try:
            conn, _ = listener_socket.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1
    return count


def test_discovery_answer_is_reused_not_asked_twice(listeners):
    # Unprivileged discovery connects to 80 and 443; when the port scan includes the port that
    # answered, that answer is the port's state: one connection to it, not two.
    listeners.listen("127.7.9.1", 80)
    result = run_group(job(["127.7.9.1"], [80, 81], timing=Timing()), loop=EventLoop())
    (host,) = result.hosts
    assert states(host) == {80: ("open", "syn-ack"), 81: ("closed", "conn-refused")}
    assert accepted_count(listeners.sockets[0]) == 1


def test_scrambled_port_order_is_a_permutation():
    from worker.group import scrambled
    for n in (0, 1, 2, 3, 10, 1000, 65535):
        ports = list(range(1, n + 1))
        order = scrambled(ports)
        assert sorted(order) == ports
    big = list(range(1, 1001))
    assert any(scrambled(big) != big for _ in range(3))  # random, not the identity
