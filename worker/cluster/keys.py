"""Where a scan's state lives in Redis: every key of scan S starts with ``nsecluster:S:``,
so the scan's end (or a test) can remove it all."""
from __future__ import annotations


def scan_prefix(scan_id: str) -> str:
    return f"nsecluster:{scan_id}:"


def unlink_matching(client, pattern: str | bytes, batch: int = 500) -> int:
    """Remove every key matching ``pattern``, a batch at a time; how many were removed."""
    removed, keys = 0, []
    for key in client.scan_iter(match=pattern, count=batch):
        keys.append(key)
        if len(keys) == batch:
            removed += client.unlink(*keys)
            keys.clear()
    if keys:
        removed += client.unlink(*keys)
    return removed
