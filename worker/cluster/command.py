"""``nsecluster worker``: a Celery worker whose processes each host one engine and one event
loop. Checks what it can before starting: the broker answers, and with --privileged that raw
sockets really work."""
from __future__ import annotations

import argparse
import os
import socket

from worker.errors import UsageError, UserError

BROKER_VARIABLE = "NSECLUSTER_BROKER"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def build_worker_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nsecluster worker",
                     description="Run a cluster worker: host groups and script phases of "
                                 "scans started with 'nsecluster scan --broker URL'.")
    parser.add_argument("--broker", metavar="URL",
                        help=f"Redis URL, e.g. redis://127.0.0.1:6379/0 (default: ${BROKER_VARIABLE})")
    parser.add_argument("--concurrency", "-c", type=int, metavar="N",
                        help="worker processes (default: the number of CPUs)")
    parser.add_argument("--privileged", action="store_true",
                        help="also take raw-packet work (queue 'raw'); needs CAP_NET_RAW")
    parser.add_argument("--queues", "-Q", metavar="Q1,Q2",
                        help="queues to consume (default: nsecluster, plus raw with --privileged)")
    parser.add_argument("--datadir", metavar="DIR",
                        help="this worker's Nmap data directory (scripts, nselib, data files)")
    parser.add_argument("--hostname", "-n", metavar="NAME",
                        help="the worker's node name (default: nsecluster-PID@HOST)")
    parser.add_argument("--visibility-timeout", type=int, default=3600, metavar="SECONDS",
                        help="a host group taken by a worker that vanished runs again after "
                             "this long; keep it above your longest group's run time "
                             "(default 3600)")
    parser.add_argument("--loglevel", "-l", default="INFO", metavar="LEVEL")
    return parser


def broker_url(given: str | None, environ) -> str:
    url = given or environ.get(BROKER_VARIABLE)
    if not url:
        raise UserError(f"no broker: give --broker redis://HOST:PORT/N or set {BROKER_VARIABLE}")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise UserError(f"unsupported broker URL {url!r} (use redis://HOST:PORT/N)")
    return url


def check_broker(url: str) -> None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        client.ping()
        client.close()
    except (redis.RedisError, ValueError) as exc:
        raise UserError(f"cannot reach the broker at {url}: {exc}") from None


def check_raw_sockets() -> None:
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003)).close()
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP).close()
    except (OSError, AttributeError) as exc:
        raise UserError("--privileged: this process cannot open raw sockets "
                        f"({getattr(exc, 'strerror', None) or exc}); run as root or grant "
                        "CAP_NET_RAW and CAP_NET_ADMIN") from None


def run_worker(argv: list[str], environ) -> int:
    from worker.cluster import presence
    from worker.cluster.app import DEFAULT_QUEUE, RAW_QUEUE, make_app
    from worker.nse import stage

    args = build_worker_parser().parse_args(argv)
    url = broker_url(args.broker, environ)
    if args.concurrency is not None and args.concurrency < 1:
        raise UsageError("--concurrency requires a positive integer")
    if args.visibility_timeout < 1:
        raise UsageError("--visibility-timeout requires a positive number of seconds")
    if args.datadir is not None and not os.path.isdir(args.datadir):
        raise UserError(f"--datadir {args.datadir}: no such directory")
    check_broker(url)
    if args.privileged:
        check_raw_sockets()
    queues = args.queues or ",".join([DEFAULT_QUEUE] + ([RAW_QUEUE] if args.privileged else []))
    if RAW_QUEUE in queues.split(",") and not args.privileged:
        raise UserError(f"queue '{RAW_QUEUE}' is for --privileged workers")
    stage.confine_to_worker_dirs(args.datadir)  # inherited by the forked worker processes
    presence.announce(url, queues.split(","), args.concurrency or os.cpu_count() or 1)
    app = make_app(url, visibility_timeout_s=args.visibility_timeout)
    options = ["worker", "-Q", queues, "-n", args.hostname or f"nsecluster-{os.getpid()}@%h",
               "--loglevel", args.loglevel, "-E"]
    if args.concurrency:
        options += ["-c", str(args.concurrency)]
    app.worker_main(options)
    return 0


def run_flower(argv: list[str], environ) -> int:
    """``nsecluster flower``: Flower on this cluster's broker, with deploy/flowerconfig.py's
    settings."""
    from worker.cluster.app import make_app

    parser = _Parser(prog="nsecluster flower", description="Watch the cluster in Flower.")
    parser.add_argument("--broker", metavar="URL", help=f"default: ${BROKER_VARIABLE}")
    parser.add_argument("--address", default="127.0.0.1", metavar="ADDRESS")
    parser.add_argument("--port", type=int, default=5555, metavar="PORT")
    args = parser.parse_args(argv)
    url = broker_url(args.broker, environ)
    check_broker(url)
    options = ["flower", f"--address={args.address}", f"--port={args.port}",
               "--max_tasks=20000", "--purge_offline_workers=300"]
    if environ.get("FLOWER_BASIC_AUTH"):
        options.append(f"--basic_auth={environ['FLOWER_BASIC_AUTH']}")
    make_app(url).start(options)
    return 0
