"""``select.select`` without its limit: file descriptors above 1023 (a lab of a
thousand pods holds that many namespaces and sockets) raise ValueError in select(2).
The same call, on poll(2)."""
from __future__ import annotations

import select as _select

_READ = _select.POLLIN | _select.POLLPRI | _select.POLLERR | _select.POLLHUP
_WRITE = _select.POLLOUT | _select.POLLERR | _select.POLLHUP


def _fileno(item) -> int:
    return item if isinstance(item, int) else item.fileno()


def select(readers, writers, errors=(), timeout: float | None = None):
    """As ``select.select(readers, writers, errors, timeout)`` (``errors`` must be empty):
    the readers and writers that are ready, within ``timeout`` seconds (None: no limit)."""
    if errors:
        raise ValueError("fdwait.select watches no exceptional conditions")
    poller = _select.poll()
    masks: dict[int, int] = {}
    for item in readers:
        masks[_fileno(item)] = masks.get(_fileno(item), 0) | _READ
    for item in writers:
        masks[_fileno(item)] = masks.get(_fileno(item), 0) | _WRITE
    for fd, mask in masks.items():
        poller.register(fd, mask)
    events = dict(poller.poll(None if timeout is None else max(0, int(timeout * 1000 + 0.999))))
    return ([item for item in readers if events.get(_fileno(item), 0) & _READ],
            [item for item in writers if events.get(_fileno(item), 0) & _WRITE], [])
