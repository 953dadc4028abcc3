"""An IPAM plugin of the harness's own that records how the plugin under test executes it.

SPEC.md (1.0.0, 1.1.0), Section 4 "Plugin Delegation": a plugin that delegates (an interface plugin to its
IPAM) looks the delegated plugin up on CNI_PATH, executes it with "the same environment and configuration
that it received" and its stderr passed on (SPEC-106, SPEC-107; spec-v0.4.0's IPAM Interface, SPEC-190), on
CHECK, DEL and GC too (SPEC-108, SPEC-130, SPEC-070), and STATUS (SPEC-060). Put in the plugin's
``ipam.type`` and written into a directory on CNI_PATH, the recorder keeps one line per execution (the
command, the whole environment, the configuration read on stdin, the path it was executed as) and answers
each command as the test told it: an error object, or success (ADD: the IPAM result it was given, in the
cniVersion asked; VERSION: every version).

It knows nothing of pytest; the suites make one in a directory of the test's own.
"""
from __future__ import annotations

import ipaddress
import json
import os
import sys
from pathlib import Path

TYPE = "netconform-recorder"
STDERR_LINE = "netconform-recorder: executed"  # what it writes on stderr (SPEC-107: passed on to the caller's)
VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]

SCRIPT = f"""#!{sys.executable} -S
# {TYPE}: harness/cni/recorder.py. Records each execution; answers as answer.json says.
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
command, text = os.environ.get("CNI_COMMAND", ""), sys.stdin.read()
try:
    conf = json.loads(text)
except ValueError:
    conf = text
version = conf.get("cniVersion", "1.1.0") if isinstance(conf, dict) else "1.1.0"
with open(os.path.join(here, "record.jsonl"), "a") as log:
    log.write(json.dumps({{"command": command, "env": dict(os.environ), "stdin": conf,
                          "executed_as": os.path.abspath(sys.argv[0])}}) + "\\n")
sys.stderr.write("{STDERR_LINE} " + command + "\\n")
with open(os.path.join(here, "answer.json")) as answer:
    told = json.load(answer)
error = told.get("errors", {{}}).get(command)
if error is not None:
    print(json.dumps({{"cniVersion": version, "code": error["code"], "msg": error["msg"]}}))
    sys.exit(1)
if command == "VERSION":
    print(json.dumps({{"cniVersion": version, "supportedVersions": {VERSIONS!r}}}))
elif command == "ADD":
    result = dict(told.get("result") or {{"ips": []}}, cniVersion=version)
    if version.startswith("0."):  # 0.x results name each address's family
        result["ips"] = [dict(ip, version="6" if ":" in ip["address"] else "4") for ip in result["ips"]]
    print(json.dumps(result))
"""


class Recorder:
    """The recorder in ``directory`` (made if missing): ``answer`` sets how it answers, ``record`` reads what
    it was sent, ``clear`` forgets it; its plugin type is ``TYPE``."""

    def __init__(self, directory: str | os.PathLike, result: dict | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / TYPE
        self.path.write_text(SCRIPT)
        self.path.chmod(0o755)
        self.result = result
        self.answer()

    def answer(self, result: dict | None = None, **errors: tuple[int, str] | None) -> None:
        """Answer each command named in ``errors`` (``CHECK=(code, msg)``) with that error object, the others
        with success; ADD with ``result`` (else the one given at creation, else no address)."""
        told = {"result": result if result is not None else self.result,
                "errors": {command: {"code": code, "msg": f"{TYPE}: {msg}"}
                           for command, (code, msg) in ((c, e) for c, e in errors.items() if e is not None)}}
        (self.directory / "answer.json").write_text(json.dumps(told))

    def record(self) -> list[dict]:
        """One dict per execution, oldest first: command, env, stdin (parsed when JSON), executed_as."""
        log = self.directory / "record.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def commands(self) -> list[str]:
        return [entry["command"] for entry in self.record()]

    def clear(self) -> None:
        (self.directory / "record.jsonl").unlink(missing_ok=True)


def result_for(ipam: dict) -> dict | None:
    """An IPAM result in the first IPv4 range of a host-local style ``ipam`` section (``ranges`` or
    ``subnet``): its rangeStart (or the subnet's second address) with the range's gateway (or the first
    address); None when the section names no IPv4 subnet, so a test claims nothing of it."""
    ranges = [r for rangeset in ipam.get("ranges") or [] for r in rangeset if isinstance(r, dict)]
    if isinstance(ipam.get("subnet"), str):
        ranges.append({"subnet": ipam["subnet"], **{k: ipam[k] for k in ("rangeStart", "gateway") if k in ipam}})
    for entry in ranges:
        try:
            subnet = ipaddress.ip_network(entry.get("subnet", ""), strict=False)
        except ValueError:
            continue
        if subnet.version != 4 or subnet.num_addresses < 4:
            continue
        gateway = ipaddress.ip_address(entry.get("gateway") or subnet.network_address + 1)
        address = ipaddress.ip_address(entry.get("rangeStart") or subnet.network_address + 2)
        if address == gateway:
            address += 1
        return {"ips": [{"address": f"{address}/{subnet.prefixlen}", "gateway": str(gateway)}]}
    return None
