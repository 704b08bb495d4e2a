"""A cluster scan's record in Redis, so `nsecluster status` and `nsecluster cancel` work from
another shell: the scan's state and counts in one hash, its outstanding task ids in a set.
The record outlives the scan by a week; the scan's working keys (registry, locks) do not."""
from __future__ import annotations

import time

RECORD_TTL_S = 7 * 86400
STATES = ("running", "cancelling", "cancelled", "interrupted", "done", "failed")


def _keys(scan_id: str) -> tuple[str, str]:
    return f"nsecluster:scans:{scan_id}", f"nsecluster:scans:{scan_id}:tasks"


class ScanRecord:
    def __init__(self, client, scan_id: str):
        self.client, self.scan_id = client, scan_id
        self.key, self.tasks_key = _keys(scan_id)

    def start(self, command_line: str) -> None:
        now = time.time()
        pipe = self.client.pipeline()
        pipe.hset(self.key, mapping={"state": "running", "command": command_line,
                                     "started": now, "updated": now, "groups_sent": 0,
                                     "groups_done": 0, "groups_failed": 0, "hosts_done": 0})
        pipe.expire(self.key, RECORD_TTL_S)
        pipe.execute()

    def sent(self, task_id: str, group: bool) -> None:
        pipe = self.client.pipeline()
        pipe.sadd(self.tasks_key, task_id)
        pipe.expire(self.tasks_key, RECORD_TTL_S)
        if group:
            pipe.hincrby(self.key, "groups_sent", 1)
        pipe.execute()

    def settled(self, task_id: str, hosts: int | None = None, failed: bool = False) -> None:
        """A task finished; ``hosts`` reported when it was a host group."""
        pipe = self.client.pipeline()
        pipe.srem(self.tasks_key, task_id)
        if hosts is not None:
            pipe.hincrby(self.key, "groups_failed" if failed else "groups_done", 1)
            pipe.hincrby(self.key, "hosts_done", hosts)
        pipe.hset(self.key, "updated", time.time())
        pipe.execute()

    def finish(self, state: str) -> None:
        self.client.hset(self.key, mapping={"state": state, "updated": time.time()})
        self.client.delete(self.tasks_key)

    def cancel_requested(self) -> bool:
        return self.client.hget(self.key, "state") in (b"cancelling", b"cancelled")


def read_record(client, scan_id: str) -> dict[str, str] | None:
    fields = client.hgetall(_keys(scan_id)[0])
    if not fields:
        return None
    return {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}


# Only a running scan becomes "cancelling": one that finished meanwhile keeps its state.
_CANCEL = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'running' then
  redis.call('HSET', KEYS[1], 'state', 'cancelling', 'updated', ARGV[1])
end
return {state or '', redis.call('SMEMBERS', KEYS[2])}
"""


def request_cancel(client, scan_id: str) -> tuple[str, list[str]]:
    """Mark the scan cancelling; (its state before, its outstanding task ids)."""
    state, tasks = client.eval(_CANCEL, 2, *_keys(scan_id), time.time())
    return state.decode(), sorted(t.decode() for t in tasks)
