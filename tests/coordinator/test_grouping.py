"""Host-group sizes (Nmap's rules, as observed with nmap -v) and the lazy split."""
import itertools

import pytest

from coordinator.errors import UserError
from coordinator.grouping import host_group_sizes, host_groups
from worker.protocol import Target


@pytest.mark.parametrize("tcp_ports, level, expected", [
    (1, 3, (1024, 1024)),     # nmap -v: "Scanning 1024 hosts [1 port/host]"
    (3, 3, (341, 341)),
    (20, 3, (64, 64)),        # "Scanning 64 hosts [20 ports/host]"
    (1000, 3, (64, 64)),
    (1001, 3, (4, 64)),       # more than 1000 ports: a small first group
    (2000, 4, (8, 64)),       # 8 at -T4
    (2000, 5, (64, 64)),      # none at -T5
    (2000, 2, (4, 64)),
])
def test_sizes_follow_nmap(tcp_ports, level, expected):
    assert host_group_sizes(tcp_ports, 0, True, level, None, None) == expected


def test_ping_scan_udp_and_bounds():
    assert host_group_sizes(0, 0, False, 3, None, None) == (4096, 4096)
    assert host_group_sizes(10, 5, True, 3, None, None) == (128, 128)
    assert host_group_sizes(3, 0, True, 3, None, 50) == (50, 50)
    assert host_group_sizes(2000, 0, True, 3, 16, None) == (16, 64)
    with pytest.raises(UserError, match="--min-hostgroup"):
        host_group_sizes(3, 0, True, 3, 100, 10)


def targets(n=None):
    numbers = itertools.count(1) if n is None else range(1, n + 1)
    for i in numbers:
        yield Target(f"127.0.{i // 256}.{i % 256}")


def test_groups_are_cut_lazily_from_an_endless_stream():
    consumed = []

    def stream():
        for target in targets():
            consumed.append(target)
            yield target

    groups = host_groups(stream(), 4, 64)
    assert len(next(groups)) == 4 and len(consumed) == 4
    assert len(next(groups)) == 64 and len(consumed) == 68


def test_every_target_once_in_order():
    groups = list(host_groups(targets(200), 4, 64))
    assert [len(g) for g in groups] == [4, 64, 64, 64, 4]
    assert [t for g in groups for t in g] == list(targets(200))
    assert list(host_groups(targets(0), 4, 64)) == []


def test_targets_before_a_bad_one_still_form_a_group():
    def stream():
        yield from targets(3)
        raise UserError("bad target")

    groups = host_groups(stream(), 64, 64)
    assert len(next(groups)) == 3
    with pytest.raises(UserError, match="bad target"):
        next(groups)
