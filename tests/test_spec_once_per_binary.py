"""A spec check of the plugin binary alone (VERSION, malformed requests, error objects) runs once
per binary and cniVersion, in the first configuration that can run it; every other chain holding
that binary skips, naming where it was checked. Proven on the bundled profiles: over the run, each
(plugin, version) that some runnable chain holds is judged exactly once, and nothing is left out."""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_each_binary_is_judged_once_per_version_and_none_is_left_out(tmp_path):
    junit = tmp_path / "junit.xml"
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q", "-rs",
                           "suites/cni/test_spec.py", "-k", "test_version_answers_the_supported_versions",
                           f"--junitxml={junit}"], cwd=PROJECT, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-3000:]
    judged, skipped_elsewhere = Counter(), []
    for case in ET.parse(junit).iter("testcase"):
        version = case.get("name").rsplit("-", 1)[1].rstrip("]")
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "plugins_checked" in props:
            judged.update((plugin, version) for plugin in props["plugins_checked"].split())
        skip = case.find("skipped")
        if skip is not None and "run once per binary" in skip.get("message", ""):
            skipped_elsewhere.append(skip.get("message"))
    assert judged and max(judged.values()) == 1, judged
    # every binary a skipped chain names was judged at that version, where it says
    for message in skipped_elsewhere:
        version = message.split("cniVersion ")[1].split(",")[0]
        for plugin in (part.split(" in ")[0].strip() for part in message.split(": ", 1)[1].split(";")):
            assert (plugin, version) in judged, (plugin, version, message)
    # the installed bridge, portmap and ptp are judged at both versions they claim
    assert {("bridge", "1.0.0"), ("bridge", "0.4.0"), ("portmap", "1.0.0"), ("ptp", "0.4.0")} <= set(judged)
