"""`nsecluster status SCAN_ID` and `nsecluster cancel SCAN_ID`: a cluster scan seen and
stopped from another shell, through its record in Redis (coordinator/scanrecord.py)."""
from __future__ import annotations

import argparse
import datetime

from coordinator.errors import UsageError, UserError
from coordinator.scanrecord import read_record, request_cancel


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _parse(command: str, argv: list[str], environ) -> tuple[str, str]:
    parser = _Parser(prog=f"nsecluster {command}")
    parser.add_argument("scan_id", metavar="SCAN_ID")
    parser.add_argument("--broker", metavar="URL", help="default: $NSECLUSTER_BROKER")
    args = parser.parse_args(argv)
    broker = args.broker or environ.get("NSECLUSTER_BROKER")
    if not broker:
        raise UserError("no broker: give --broker redis://HOST:PORT/N or set NSECLUSTER_BROKER")
    return args.scan_id, broker


def _client(broker: str):
    import redis

    try:
        client = redis.Redis.from_url(broker, socket_connect_timeout=5, socket_timeout=10)
        client.ping()
        return client
    except (redis.RedisError, ValueError) as exc:
        raise UserError(f"cannot reach the broker at {broker}: {exc}") from None


def _record(client, scan_id: str, broker: str) -> dict[str, str]:
    record = read_record(client, scan_id)
    if record is None:
        raise UserError(f"no scan {scan_id} on {broker}")
    return record


def _when(epoch: str) -> str:
    moment = datetime.datetime.fromtimestamp(float(epoch), datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def run_status(argv: list[str], environ) -> int:
    scan_id, broker = _parse("status", argv, environ)
    client = _client(broker)
    record = _record(client, scan_id, broker)
    outstanding = client.scard(f"nsecluster:scans:{scan_id}:tasks")
    print(f"scan {scan_id}: {record['state']}")
    print(f"  command: {record.get('command', '')}")
    print(f"  started: {_when(record['started'])}, last change {_when(record['updated'])}")
    print(f"  host groups: {record['groups_done']} done, {record['groups_failed']} failed, "
          f"{record['groups_sent']} sent")
    print(f"  hosts reported: {record['hosts_done']}")
    print(f"  tasks outstanding: {outstanding}")
    return 0


def run_cancel(argv: list[str], environ) -> int:
    from worker.cluster.app import make_app

    scan_id, broker = _parse("cancel", argv, environ)
    client = _client(broker)
    _record(client, scan_id, broker)
    state, tasks = request_cancel(client, scan_id)
    if state != "running":
        print(f"scan {scan_id} is {state}: nothing to cancel")
        return 0
    if tasks:
        make_app(broker).control.revoke(tasks, terminate=True, signal="SIGTERM")
    print(f"scan {scan_id}: cancelling ({len(tasks)} task{'s' if len(tasks) != 1 else ''} "
          "revoked); its coordinator writes what finished and stops")
    return 0
