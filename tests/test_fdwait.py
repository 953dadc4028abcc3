"""fdwait.select: select.select's answers, for descriptors select(2) cannot take (>= 1024)."""
import os
import resource
import select
import socket
import time

import pytest

from harness.kernel import fdwait


@pytest.fixture
def high_pair():
    """A socket pair whose ends sit above descriptor 1023."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1100:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard}: no descriptor above 1023 can be had")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1100), hard))
    a, b = socket.socketpair()
    high = [socket.socket(fileno=os.dup2(s.fileno(), 1050 + i)) for i, s in enumerate((a, b))]
    a.close()
    b.close()
    yield high
    for s in high:
        s.close()
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_select_itself_refuses_a_high_descriptor(high_pair):
    with pytest.raises(ValueError):
        select.select([high_pair[0]], [], [], 0)


def test_a_high_descriptor_with_data_is_readable(high_pair):
    left, right = high_pair
    right.send(b"x")
    assert fdwait.select([left], [], [], 1.0) == ([left], [], [])


def test_a_quiet_descriptor_is_not_readable_after_its_timeout(high_pair):
    left, _ = high_pair
    start = time.monotonic()
    assert fdwait.select([left], [], [], 0.02) == ([], [], [])
    assert time.monotonic() - start >= 0.019


def test_writable_and_plain_fds_are_reported_as_given(high_pair):
    left, right = high_pair
    readers, writers, _ = fdwait.select([left.fileno()], [right], [], 0)
    assert readers == [] and writers == [right]
