"""The box cache, bounded and cleanable: ``python -m harness vm clean [--all]``.

A build keeps one box file per release (box.build removes the release's older ones), and Vagrant
keeps one copy of each box it was given: at most two copies per release (0.6 to 0.9 GB each).
``clean`` removes what this checkout's inputs no longer make (box files and Vagrant's copies of
other keys, and box files of the first name, netconform-debian12); ``--all`` removes every box
and the cached .debs besides, so the next run builds from nothing. The cache is the machine's
(/var/cache/netconform): another checkout's current box is stale for this one, and rebuilt when
that checkout runs again.
"""
from __future__ import annotations

import glob
import os
import re
import shutil

from harness.vm import box

BOX_FILE = re.compile(r"^netconform-(?P<release>[a-z0-9]+)-(?P<key>[0-9a-f]{12})\.box(\.partial)?$")


def size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def stale(project: str, everything: bool = False) -> list[str]:
    """What ``clean`` removes: the paths, none of them a current box unless ``everything``."""
    current = {name: box.box_key(project, spec) for name, spec in box.RELEASES.items()}
    found = []
    for path in sorted(glob.glob(os.path.join(box.CACHE, "boxes", "netconform-*"))):
        match = BOX_FILE.match(os.path.basename(path))
        if everything or match is None or current.get(match["release"]) != match["key"]:
            found.append(path)
    vagrant_boxes = os.path.join(box.CACHE, "vagrant.d", "boxes")
    for path in sorted(glob.glob(os.path.join(vagrant_boxes, "netconform-VAGRANTSLASH-*"))):
        release = os.path.basename(path).split("-VAGRANTSLASH-", 1)[1]
        spec = box.RELEASES.get(release)
        if everything or spec is None or box.added_key(os.path.dirname(vagrant_boxes), spec) != current[release]:
            found.append(path)
    if everything and os.path.isdir(os.path.join(box.CACHE, "debs")):
        found.append(os.path.join(box.CACHE, "debs"))
    return found


def clean(project: str, everything: bool = False) -> list[tuple[str, int]]:
    """Remove what ``stale`` names; returns each path with the bytes it held."""
    removed = []
    for path in stale(project, everything):
        held = size(path)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        removed.append((path, held))
    return removed
