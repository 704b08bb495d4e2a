"""Which workers are connected, read straight from Redis: each worker keeps a key with its
queues and process count alive on its heartbeat (every 2 s, 10 s to live), so the
coordinator learns the cluster's shape in one round trip instead of a one-second broadcast
to every worker."""
from __future__ import annotations

import json
import os
import socket

from celery import signals

PREFIX = "nsecluster:workers:"
TTL_S = 10

_announced: dict | None = None  # this worker's record, once the worker command set it
_client = None
_leaving = False


def announce(broker_url: str, queues: list[str], concurrency: int) -> None:
    """Called by `nsecluster worker` before Celery starts: what to keep announcing."""
    global _announced
    node = f"{os.getpid()}@{socket.gethostname()}"
    _announced = {"url": broker_url, "key": PREFIX + node,
                  "value": json.dumps({"node": node, "queues": queues,
                                       "concurrency": concurrency})}


def live_workers(client) -> list[dict]:
    records = []
    for key in client.scan_iter(match=PREFIX + "*", count=1000):
        raw = client.get(key)
        try:
            record = json.loads(raw) if raw else None
        except ValueError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("queues"), list):
            records.append(record)
    return records


def _redis():
    global _client
    if _client is None:
        import redis
        _client = redis.Redis.from_url(_announced["url"], socket_timeout=5,
                                       socket_connect_timeout=5)
    return _client


@signals.worker_ready.connect
@signals.heartbeat_sent.connect
def _refresh(**_) -> None:
    if _announced is None or _leaving:
        return
    try:
        _redis().set(_announced["key"], _announced["value"], ex=TTL_S)
    except Exception:  # presence is advisory: the worker keeps working without it
        pass


@signals.worker_shutting_down.connect
def _leave(**_) -> None:
    global _leaving
    _leaving = True
    if _announced is not None:
        try:
            _redis().delete(_announced["key"])
        except Exception:
            pass
