"""The scan on a real cluster: two `nsecluster worker` processes (two worker processes each)
over the real Redis, started by the tests; results equal the embedded run's, the registry and
mutexes hold across workers, and bad or pickled messages are refused."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import redis
from cluster_support import Workers
from conftest import REPO, run_nsecluster

BROKER = "redis://127.0.0.1:6379/7"  # a database of its own: queues and results of these tests

COUNTER_SCRIPT = """
local nmap = require "nmap"
local stdnse = require "stdnse"
description = "Counts hosts in the shared registry under a mutex; the post-scan reports it."
categories = {"safe"}
hostrule = function() return true end
postrule = function() return true end
action = function(host)
  if SCRIPT_TYPE == "postrule" then
    local hosts = 0
    for _ in pairs(nmap.registry.seen or {}) do hosts = hosts + 1 end
    return ("counter=%d hosts=%d"):format(nmap.registry.counter or 0, hosts)
  end
  local mutex = nmap.mutex("counter")
  mutex "lock"
  local value = nmap.registry.counter or 0
  stdnse.sleep(0.002)  -- a lost update would show without the lock
  nmap.registry.counter = value + 1
  nmap.registry.seen = nmap.registry.seen or {}
  nmap.registry.seen[host.ip] = true
  mutex "done"
  return "counted"
end
"""


SLOW_SCRIPT = """
local stdnse = require "stdnse"
description = "Takes a while on every host, so a test can kill workers mid-group."
categories = {"safe"}
hostrule = function() return true end
action = function(host)
  stdnse.sleep(1.5)
  return "slept"
end
"""

POISON_SCRIPT = """
description = "Kills the worker process that runs it on one host: a poison group."
categories = {"safe"}
hostrule = function(host) return host.ip == "127.0.73.3" end
action = function(host)
  os.exit(3)
end
"""


RAW_SCRIPT = """
local nmap = require "nmap"
description = "Makes a dnet handle (sends nothing): its host groups need a privileged worker."
categories = {"safe"}
hostrule = function() return true end
action = function(host)
  local dnet = nmap.new_dnet()
  return dnet and "dnet handle"
end
"""

PRIVILEGE_SCRIPT = """
local nmap = require "nmap"
description = "Prints nmap.is_privileged() as the worker running it answers."
categories = {"safe"}
hostrule = function() return true end
action = function(host) return tostring(nmap.is_privileged()) end
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    client = redis.Redis.from_url(BROKER)
    client.flushdb()  # this database belongs to these tests
    datadir = tmp_path_factory.mktemp("worker-datadir")
    (datadir / "scripts").mkdir()
    for name, source in (("count-hosts", COUNTER_SCRIPT), ("slow-host", SLOW_SCRIPT),
                         ("poison", POISON_SCRIPT), ("raw-probe", RAW_SCRIPT),
                         ("privilege-check", PRIVILEGE_SCRIPT)):
        (datadir / "scripts" / f"{name}.nse").write_text(source)
    workers = Workers(datadir, tmp_path_factory.mktemp("logs"), BROKER)
    workers.start()
    yield workers
    workers.stop()
    client.flushdb()
    client.close()


def xml_hosts(path: Path) -> dict:
    """{address: (state, {(port, state, service): [script outputs]}, [host scripts])}."""
    hosts = {}
    root = ET.parse(path).getroot()
    for host in root.iter("host"):
        address = host.find("address").get("addr")
        ports = {}
        for port in host.iter("port"):
            service = port.find("service")
            ports[(port.get("portid"), port.find("state").get("state"),
                   service.get("name") if service is not None else None)] = sorted(
                (s.get("id"), s.get("output")) for s in port.iter("script"))
        host_scripts = sorted((s.get("id"), s.get("output"))
                              for h in host.iter("hostscript") for s in h.iter("script"))
        hosts[address] = (host.find("status").get("state"), ports, host_scripts)
    post = sorted((s.get("id"), s.get("output"))
                  for p in root.iter("postscript") for s in p.iter("script"))
    return {"hosts": hosts, "post": post}


def test_a_cluster_scan_gives_the_embedded_results(cluster, listeners, tmp_path):
    opened = {}
    for last in range(1, 25):
        address = f"127.0.70.{last}"
        if last % 3 == 0:
            opened[address] = listeners.listen(address)
    ports = sorted(set(opened.values())) + [1, 7]
    common = ["-sT", "-n", "-Pn", "-p", ",".join(map(str, ports)), "--max-hostgroup", "3",
              "127.0.70.1-24"]
    embedded = run_nsecluster("scan", *common, "-oX", tmp_path / "embedded.xml")
    clustered = run_nsecluster("scan", *common, "--broker", BROKER, "-oX", tmp_path / "cluster.xml")
    assert embedded.returncode == 0, embedded.stderr
    assert clustered.returncode == 0, clustered.stderr
    ours = xml_hosts(tmp_path / "cluster.xml")
    assert ours == xml_hosts(tmp_path / "embedded.xml")
    assert len(ours["hosts"]) == 24
    for address, port in opened.items():
        assert any(key[:2] == (str(port), "open") for key in ours["hosts"][address][1])


def test_registry_and_mutex_hold_across_workers(cluster, tmp_path):
    done = run_nsecluster("scan", "-n", "-Pn", "-p", "1", "--max-hostgroup", "2",
                          "--script", "count-hosts", "--broker", BROKER,
                          "127.0.71.1-40", "-oX", tmp_path / "out.xml")
    assert done.returncode == 0, done.stderr
    result = xml_hosts(tmp_path / "out.xml")
    assert all(scripts == [("count-hosts", "counted")]
               for _, _, scripts in result["hosts"].values())
    assert result["post"] == [("count-hosts", "counter=40 hosts=40")]
    # Both workers took host groups (20 groups of two, four worker processes).
    for index in range(2):
        assert "nsecluster.group" in cluster.log(index)
    # The scan's shared state went with the scan.
    client = redis.Redis.from_url(BROKER)
    assert [k for k in client.scan_iter(match="nsecluster:*:reg:*")] == []
    client.close()


def slow_scan(targets: str, group_size: int, broker: str = BROKER, xml: Path | None = None):
    """A background cluster scan running slow-host (1.5 s a host) over ``targets``."""
    return subprocess.Popen(
        [sys.executable, "-m", "coordinator.cli", "scan", "-n", "-Pn", "-p", "1",
         "--max-hostgroup", str(group_size), "--script", "slow-host", "--broker", broker,
         targets, *(["-oX", str(xml)] if xml else [])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)})


def reported_addresses(path: Path) -> list[str]:
    return [h.find("address").get("addr") for h in ET.parse(path).getroot().iter("host")]


def test_killed_worker_processes_have_their_groups_run_again(cluster, tmp_path):
    seen = len(cluster.log(0))
    scan = slow_scan("127.0.72.1-12", 2, xml=tmp_path / "out.xml")
    main = cluster.processes[0].pid
    children: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not children:
        time.sleep(0.1)
        if "nsecluster.group" in cluster.log(0)[seen:]:  # a group of this scan is here:
            time.sleep(0.5)  # kill mid-group
            children = [int(p) for p in subprocess.run(
                ["pgrep", "-P", str(main)], capture_output=True, text=True).stdout.split()]
    assert children, "worker 0 never took a group"
    for child in children:
        os.kill(child, signal.SIGKILL)
    out, err = scan.communicate(timeout=120)
    assert scan.returncode == 0, err
    addresses = reported_addresses(tmp_path / "out.xml")
    assert sorted(addresses) == sorted(f"127.0.72.{n}" for n in range(1, 13))  # each once
    result = xml_hosts(tmp_path / "out.xml")
    assert all(scripts == [("slow-host", "slept")] for _, _, scripts in result["hosts"].values())
    assert "exited with 'signal 9 (SIGKILL)'" in cluster.log(0)[seen:]
    assert "WorkerLostError" in cluster.log(0)[seen:]


def test_a_poison_group_fails_after_bounded_retries_and_the_rest_completes(cluster, tmp_path):
    done = run_nsecluster("scan", "-n", "-Pn", "-p", "1", "--max-hostgroup", "2",
                          "--script", "poison", "--broker", BROKER, "127.0.73.1-6",
                          "-oX", tmp_path / "out.xml", timeout=180)
    assert done.returncode == 1
    assert ("nsecluster: host group 1 (2 hosts: 127.0.73.3 ...) failed: WorkerLostError"
            in done.stderr), done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(reported_addresses(tmp_path / "out.xml")) == [
        "127.0.73.1", "127.0.73.2", "127.0.73.5", "127.0.73.6"]
    logs = cluster.log(0) + cluster.log(1)
    assert logs.count("exited with 'exitcode 3'") == 3  # the first run and two retries


def test_pickled_and_malformed_messages_are_refused(cluster):
    from worker.cluster.app import TASK_GROUP, make_app

    app = make_app(BROKER)
    pickled = app.send_task(TASK_GROUP, args=[{"v": 1}], serializer="pickle",
                            queue="nsecluster")
    malformed = app.send_task(TASK_GROUP, args=[{"v": 1, "kind": "group-job"}],
                              queue="nsecluster")
    deadline = time.monotonic() + 30
    logs = ""
    while time.monotonic() < deadline:
        logs = cluster.log(0) + cluster.log(1)
        if "ContentDisallowed" in logs and "bad job message" in logs:
            break
        time.sleep(0.2)
    assert "ContentDisallowed" in logs and "pickle" in logs
    assert "bad job message: message.scan_id: expected str" in logs
    assert pickled.state == "PENDING"  # never ran
    assert malformed.state != "SUCCESS"


def test_a_scan_without_workers_says_so(tmp_path):
    lonely = "redis://127.0.0.1:6379/8"
    redis.Redis.from_url(lonely).flushdb()
    done = run_nsecluster("scan", "-n", "-Pn", "-p", "1", "--broker", lonely, "127.0.0.1",
                          timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"nsecluster: no nsecluster worker is connected to {lonely} (start one with: "
        f"nsecluster worker --broker {lonely})")


def test_an_unreachable_broker_is_one_line(tmp_path):
    done = run_nsecluster("scan", "-n", "-Pn", "-p", "1", "--broker", "redis://127.0.0.1:1/0",
                          "127.0.0.1", timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("nsecluster: cannot reach the broker at redis://127.0.0.1:1/0")
    assert "Traceback" not in done.stderr
    worker = run_nsecluster("worker", "--broker", "redis://127.0.0.1:1/0", timeout=60)
    assert worker.returncode == 1 and "cannot reach the broker" in worker.stderr


def test_scripts_named_by_path_are_refused_with_a_broker():
    done = run_nsecluster("scan", "-n", "-Pn", "-p", "1", "--broker", BROKER, "--script",
                          "/tmp/evil.nse", "127.0.0.1")
    assert done.returncode == 1
    assert "workers load scripts only from their own script directories" in done.stderr


def test_a_privileged_worker_without_raw_sockets_says_what_is_missing():
    done = run_nsecluster("worker", "--broker", BROKER, "--privileged", without_raw=True,
                          timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("nsecluster: --privileged: this process cannot open raw "
                                  "sockets (Operation not permitted)")


@pytest.mark.parametrize("flags, expected", [((), "true"), (("--unprivileged",), "false")])
def test_the_workers_privilege_counts_not_the_coordinators(cluster, tmp_path, flags, expected):
    """The coordinator may not open raw sockets; the (root) workers may: is_privileged() is
    theirs, unless the scan says --unprivileged."""
    done = run_nsecluster("scan", "-n", "-Pn", "-p", "1", "--script", "privilege-check",
                          "--broker", BROKER, *flags, "127.0.77.1", "-oX", tmp_path / "out.xml",
                          without_raw=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (_, _, scripts), = xml_hosts(tmp_path / "out.xml")["hosts"].values()
    assert scripts == [("privilege-check", expected)]


def scan_id_from(process: subprocess.Popen, limit_s: float = 30) -> str:
    """The ID the coordinator announces on standard error before it starts."""
    import re
    import selectors

    selector = selectors.DefaultSelector()
    selector.register(process.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if selector.select(timeout=0.5):
            line = process.stderr.readline()
            match = re.match(r"nsecluster: scan ([0-9a-f]{32}) on ", line)
            if match:
                return match.group(1)
            assert line, "the coordinator ended before announcing its scan"
    raise AssertionError("no scan ID announced")


def test_status_and_cancel_from_another_shell(cluster, tmp_path):
    scan = slow_scan("127.0.74.1-16", 1, xml=tmp_path / "out.xml")
    scan_id = scan_id_from(scan)
    deadline = time.monotonic() + 20
    while True:  # the ID is announced before the pre-scan phase; groups go out after it
        status = run_nsecluster("status", scan_id, "--broker", BROKER)
        assert status.returncode == 0, status.stderr
        if "8 sent" in status.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status.stdout.startswith(f"scan {scan_id}: running\n")
    assert "host groups: 0 done, 0 failed, 8 sent" in status.stdout  # the window: 4 processes
    cancel = run_nsecluster("cancel", scan_id, "--broker", BROKER)
    assert cancel.returncode == 0, cancel.stderr
    assert cancel.stdout.startswith(f"scan {scan_id}: cancelling (")
    started = time.monotonic()
    scan.communicate(timeout=60)
    assert scan.returncode == 130
    assert time.monotonic() - started < 10
    assert len(reported_addresses(tmp_path / "out.xml")) < 16  # the XML is complete and valid
    after = run_nsecluster("status", scan_id, "--broker", BROKER)
    assert after.stdout.startswith(f"scan {scan_id}: cancelled\n")
    assert "tasks outstanding: 0" in after.stdout
    client = redis.Redis.from_url(BROKER)
    assert list(client.scan_iter(match=f"nsecluster:{scan_id}:*")) == []
    client.close()
    again = run_nsecluster("cancel", scan_id, "--broker", BROKER)
    assert again.stdout == f"scan {scan_id} is cancelled: nothing to cancel\n"


def test_status_of_an_unknown_scan_is_one_line():
    done = run_nsecluster("status", "0" * 32, "--broker", BROKER)
    assert done.returncode == 1
    assert done.stderr == f"nsecluster: no scan {'0' * 32} on {BROKER}\n"


def test_flower_shows_the_scans_tasks_and_their_progress(cluster, tmp_path):
    import json
    import urllib.request

    from conftest import free_port

    port = free_port("127.0.0.1")
    flower = subprocess.Popen(
        [sys.executable, "-m", "coordinator.cli", "flower", "--broker", BROKER, "--port",
         str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "FLOWER_UNAUTHENTICATED_API": "true"},
        start_new_session=True)

    def api(path: str) -> dict:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/{path}",
                                        timeout=5) as reply:
                return json.load(reply)
        except (OSError, ValueError):
            return {}

    def tasks() -> dict:
        return api("tasks")

    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and flower.poll() is None and \
                len(api("workers?refresh=1")) < 2:
            time.sleep(0.3)  # Flower is up once it sees the workers
        time.sleep(1)  # and its event receiver has started
        scan = slow_scan("127.0.75.1-4", 2)
        scan_id = scan_id_from(scan)
        progress = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and scan.poll() is None:
            progress += [t for t in tasks().values() if t.get("state") == "PROGRESS"
                         and t["name"].startswith(f"nsecluster.group {scan_id[:12]} #")]
            time.sleep(0.3)
        scan.communicate(timeout=60)
        assert scan.returncode == 0
        assert progress, "no group was seen in the PROGRESS state"
        assert any(t.get("result") == "scripts: 0/2 hosts done, port scan 100%, 2 script "
                   "threads (slow-host)" for t in progress), [t.get("result") for t in progress]
        expected = {f"nsecluster.prerule {scan_id[:12]}": "SUCCESS",
                    f"nsecluster.group {scan_id[:12]} #0": "SUCCESS",
                    f"nsecluster.group {scan_id[:12]} #1": "SUCCESS",
                    f"nsecluster.postrule {scan_id[:12]}": "SUCCESS"}
        deadline = time.monotonic() + 15
        while True:  # the last events reach Flower
            mine = {t["name"]: t["state"] for t in tasks().values()
                    if scan_id[:12] in (t.get("name") or "")}
            if mine == expected or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert mine == expected, [(t.get("name"), t.get("state"), t.get("received"),
                                   t.get("started"), t.get("worker"))
                                  for t in tasks().values() if not t.get("name")][-6:]
    finally:
        os.killpg(flower.pid, signal.SIGTERM)
        flower.wait(timeout=20)


def test_raw_work_needs_a_privileged_worker_and_goes_only_to_one(cluster, tmp_path):
    arguments = ["scan", "-n", "-Pn", "-p", "1", "--max-hostgroup", "2", "--script",
                 "raw-probe", "--broker", BROKER, "127.0.76.1-6", "-oX", tmp_path / "out.xml"]
    refused = run_nsecluster(*arguments)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        f"nsecluster: this scan needs raw packets (script raw-probe) but no --privileged "
        f"worker is connected to {BROKER} (start one with: nsecluster worker --privileged "
        f"--broker {BROKER})")
    assert not (tmp_path / "out.xml").exists()  # stopped before any output was opened
    udp = ["scan", "-n", "-Pn", "-sU", "-p", "9", "--broker", BROKER, "127.0.76.1",
           "-oX", tmp_path / "udp.xml"]
    refused = run_nsecluster(*udp)
    assert refused.returncode == 1
    assert "this scan needs raw packets (-sU) but no --privileged worker" in refused.stderr

    cluster.start(count=1, privileged=True)  # worker 2: we are root, raw sockets work
    done = run_nsecluster(*udp)
    assert done.returncode == 0, done.stderr
    assert '<port protocol="udp" portid="9"><state state="closed" reason="port-unreach"' in \
        (tmp_path / "udp.xml").read_text()
    done = run_nsecluster(*arguments)
    assert done.returncode == 0, done.stderr
    scan_id = done.stderr.split("nsecluster: scan ", 1)[1][:12]
    result = xml_hosts(tmp_path / "out.xml")
    assert len(result["hosts"]) == 6
    assert all(scripts == [("raw-probe", "dnet handle")]
               for _, _, scripts in result["hosts"].values())
    groups = f"nsecluster.group {scan_id} #"
    assert cluster.log(2).count(groups) >= 3  # every group (received, succeeded)
    assert groups not in cluster.log(0) and groups not in cluster.log(1)


def test_a_redis_restart_mid_scan_stops_it_with_a_clear_message(tmp_path):
    """Redis without persistence loses its queues on a restart: the coordinator notices and
    stops; every host it wrote is complete."""
    from conftest import free_port

    port = free_port("127.0.0.1")
    broker = f"redis://127.0.0.1:{port}/0"

    def start_redis():
        return subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                                 "--save", "", "--appendonly", "no"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_for_redis():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(broker).ping()
                return
            except redis.RedisError:
                time.sleep(0.1)
        raise AssertionError("redis did not start")

    server = start_redis()
    wait_for_redis()
    datadir = tmp_path / "datadir"
    (datadir / "scripts").mkdir(parents=True)
    (datadir / "scripts" / "slow-host.nse").write_text(SLOW_SCRIPT)
    logs = tmp_path / "logs"
    logs.mkdir()
    workers = Workers(datadir, logs, broker)
    try:
        workers.start(count=1)
        scan = slow_scan("127.0.77.1-10", 1, broker, xml=tmp_path / "out.xml")
        deadline = time.monotonic() + 30
        out = tmp_path / "out.xml"
        while time.monotonic() < deadline and not (out.exists() and "<host " in out.read_text()):
            time.sleep(0.1)  # a host group is written
        server.kill()
        server.wait(timeout=10)
        server = start_redis()
        _, err = scan.communicate(timeout=60)
        assert scan.returncode == 1, err
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"nsecluster: the broker at {broker} restarted during the scan") \
            or last.startswith(f"nsecluster: lost the broker at {broker}"), err
        assert "Traceback" not in err
        result = xml_hosts(tmp_path / "out.xml")  # complete XML, finished hosts only
        assert 1 <= len(result["hosts"]) < 10
        assert all(scripts == [("slow-host", "slept")] for _, _, scripts in
                   result["hosts"].values())
    finally:
        workers.stop()
        server.kill()
        server.wait(timeout=10)


def test_a_whole_worker_killed_mid_group_has_its_groups_taken_by_another(tmp_path):
    """SIGKILL to a worker and all its processes: nobody is left to requeue its tasks, so
    they come back after the visibility timeout and the other worker runs them."""
    broker = "redis://127.0.0.1:6379/9"
    client = redis.Redis.from_url(broker)
    client.flushdb()
    datadir = tmp_path / "datadir"
    (datadir / "scripts").mkdir(parents=True)
    (datadir / "scripts" / "slow-host.nse").write_text(SLOW_SCRIPT)
    logs = tmp_path / "logs"
    logs.mkdir()
    workers = Workers(datadir, logs, broker)
    try:
        workers.start(count=2, extra=["--visibility-timeout", "4"])
        scan = slow_scan("127.0.78.1-8", 1, broker, xml=tmp_path / "out.xml")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "nsecluster.group" not in workers.log(0):
            time.sleep(0.1)
        time.sleep(0.5)  # mid-group
        os.killpg(workers.processes[0].pid, signal.SIGKILL)
        _, err = scan.communicate(timeout=120)
        assert scan.returncode == 0, err
        addresses = reported_addresses(tmp_path / "out.xml")
        assert sorted(addresses) == sorted(f"127.0.78.{n}" for n in range(1, 9))  # each once
        result = xml_hosts(tmp_path / "out.xml")
        assert all(scripts == [("slow-host", "slept")] for _, _, scripts in
                   result["hosts"].values())
    finally:
        workers.stop()
        client.flushdb()
        client.close()


def test_ctrl_c_revokes_the_scans_outstanding_tasks(cluster, tmp_path):
    scan = slow_scan("127.0.79.1-20", 1, xml=tmp_path / "out.xml")
    scan_id = scan_id_from(scan)
    time.sleep(1.0)  # groups are queued and running
    scan.send_signal(signal.SIGINT)
    scan.communicate(timeout=60)
    assert scan.returncode == 130
    status = run_nsecluster("status", scan_id, "--broker", BROKER)
    assert status.stdout.startswith(f"scan {scan_id}: interrupted\n")
    assert "tasks outstanding: 0" in status.stdout
    def finished_groups() -> int:
        logs = "".join(cluster.log(i) for i in range(len(cluster.processes)))
        return len(re.findall(rf"nsecluster\.group {scan_id[:12]} #\d+\[[-0-9a-f]+\] "
                              r"succeeded", logs))

    at_exit = finished_groups()
    time.sleep(3)  # nothing of the scan runs on after the revoke
    assert finished_groups() == at_exit < 20
    logs = "".join(cluster.log(i) for i in range(len(cluster.processes)))
    assert f"Discarding revoked task: nsecluster.group {scan_id[:12]}" in logs
    assert len(reported_addresses(tmp_path / "out.xml")) < 20


def test_version_detection_runs_on_the_workers(cluster, tmp_path):
    """-sV through the cluster: the workers probe and match (the job carries the options),
    and the coordinator writes the same services as the embedded scan."""
    from ftp_peer import FtpPeer

    peer = FtpPeer("127.0.71.1", 0, banner=b"220 (vsFTPd 3.0.3)\r\n")
    try:
        common = ["-sT", "-n", "-Pn", "-sV", "--version-light", "-p", str(peer.port),
                  "127.0.71.1"]
        embedded = run_nsecluster("scan", *common, "-oX", tmp_path / "embedded.xml")
        clustered = run_nsecluster("scan", *common, "--broker", BROKER,
                                   "-oX", tmp_path / "cluster.xml")
    finally:
        peer.close()
    assert embedded.returncode == 0, embedded.stderr
    assert clustered.returncode == 0, clustered.stderr

    def services(path):
        return [dict(s.attrib) for s in ET.parse(path).getroot().iter("service")]

    found = services(tmp_path / "cluster.xml")
    assert found == services(tmp_path / "embedded.xml")
    assert [(s["name"], s["product"], s["version"], s["method"]) for s in found] == [
        ("ftp", "vsftpd", "3.0.3", "probed")]
