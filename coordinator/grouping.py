"""Host groups: how many hosts a worker scans together, and the lazy split into groups."""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from coordinator.errors import UserError
from worker.protocol import Target


def host_group_sizes(tcp_port_count: int, udp_port_count: int, port_scan: bool,
                     timing_level: int, min_hostgroup: int | None,
                     max_hostgroup: int | None) -> tuple[int, int]:
    """(first group size, later group size) after Nmap's rules (nse-spec §4.1): bigger groups
    for few ports; a small first group for long per-host scans so results appear early."""
    if not port_scan:
        ideal = first = 4096
    elif udp_port_count:
        ideal = first = 128
    else:
        ideal = max(1024 // max(tcp_port_count, 1), 64)
        first = ideal
        if tcp_port_count > 1000 and timing_level <= 4:
            first = 8 if timing_level == 4 else 4
    if min_hostgroup is not None and max_hostgroup is not None and min_hostgroup > max_hostgroup:
        raise UserError("--min-hostgroup must be less than or equal to --max-hostgroup")

    def clamp(size: int) -> int:
        if min_hostgroup is not None:
            size = max(size, min_hostgroup)
        if max_hostgroup is not None:
            size = min(size, max_hostgroup)
        return max(size, 1)

    return clamp(first), clamp(ideal)


def host_groups(targets: Iterable[Target], first_size: int,
                size: int) -> Iterator[tuple[Target, ...]]:
    """Consecutive groups, the first of ``first_size``; never reads ahead more than a group.
    A bad target (say deep in -iL) ends the split, but only after the targets read before it
    have gone out as a last group: nothing already planned is lost."""
    iterator = iter(targets)
    wanted = first_size
    while True:
        group: list[Target] = []
        problem = None
        try:
            for target in iterator:
                group.append(target)
                if len(group) == wanted:
                    break
        except UserError as exc:
            problem = exc
        if group:
            yield tuple(group)
        if problem is not None:
            raise problem
        if len(group) < wanted:
            return
        wanted = size
