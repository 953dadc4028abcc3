"""The harness's own tests: print the fault catalogue's kill table when it was made."""
import os

KILL_TABLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reports", "kill-table.txt")


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput") and os.path.exists(KILL_TABLE):
        os.unlink(KILL_TABLE)


def pytest_terminal_summary(terminalreporter):
    if os.path.exists(KILL_TABLE):
        terminalreporter.section("fault catalogue: fault -> tests that caught it")
        with open(KILL_TABLE) as table:
            for line in sorted(set(table)):
                terminalreporter.write_line(line.rstrip())


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: the real VM job (make check runs it on its own, after the other tests)")
    config.addinivalue_line("markers", "two_hosts: the two-host Flannel run (make twohost; not in make check's vm-check)")
