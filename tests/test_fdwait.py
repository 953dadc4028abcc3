"""fdwait.select: select.select's answers, for descriptors select(2) cannot take (>= 1024); and
the one deadline every wait uses (harness.kernel.deadline), which notes its timing margin."""
import os
import resource
import select
import socket
import time

import pytest

from harness.evidence import margins
from harness.kernel import fdwait
from harness.kernel.deadline import Deadline


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


@pytest.fixture
def fresh_margins(monkeypatch):
    """This test's margins only (the process's table is put back after)."""
    monkeypatch.setattr(margins, "_worst", {})


def test_a_wait_ends_at_the_first_event_and_notes_its_margin(fresh_margins):
    left, right = socket.socketpair()
    with left, right:
        wait = Deadline(1.0, "pair")
        rounds = 0
        for _ in wait.rounds([left]):
            rounds += 1
            if rounds == 1:
                right.send(b"x")  # the event comes after the first look
            elif left.recv(1) == b"x":
                used = wait.met()
                break
        assert rounds == 2 and used < 0.5
    worst = margins.worst()["pair"]
    assert worst["allowed"] == 1.0 and 0 < worst["used"] < 0.5, worst
    with margins.running("a block of its own"):  # what the pytest plugin does for each test
        Deadline(1.0, "named").met()
    assert margins.worst()["named"]["where"] == "a block of its own"


def test_a_wait_with_no_event_ends_after_its_deadline_and_notes_nothing(fresh_margins):
    left, right = socket.socketpair()
    with left, right:
        wait = Deadline(0.02, "quiet")
        rounds = sum(1 for _ in wait.rounds([left]))
        assert wait.passed and wait.elapsed() >= 0.019 and rounds >= 2  # the last round comes after the deadline
        right.send(b"late")
        assert wait.wait([left]) == ([], [])  # past the deadline: nothing, at once, even with data pending
    assert "quiet" not in margins.worst()
