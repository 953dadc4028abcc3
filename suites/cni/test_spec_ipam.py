"""The CNI spec (SPEC.md of containernetworking/cni, spec-v0.4.0, -v1.0.0, -v1.1.0) on the IPAM plugin a
chain delegates to, exec'd directly as its plugin delegates to it: the plugin's own configuration on stdin,
the same CNI_ environment (spec-v1.0.0 Section 4: "the same environment variables", "the same network
configuration"). Its ADD answer is the abbreviated result (ips, routes, dns; no interfaces, no interface
index), in the asked cniVersion; the address is reserved, and DEL releases it.

What an IPAM binary answers depends on the binary and the cniVersion alone: each check runs once per IPAM
type and version, in the first configuration of the run that delegates to it (pytest_netconform.cni_select.ipam_checks),
with no lab (host-local enters no network namespace: CNI_NETNS names the path a pod would have). The
reservation is read where host-local keeps it: a file named by the address in its dataDir, under the run's
own /var/lib/cni (harness.cni.runtime.PLUGIN_STATE_DIR). The twins, results that are not the abbreviated
form, are plugins of ours: tests/test_cni_ipam.py.
"""
import json
import os

import pytest

from harness.cni.runtime import Here, Runtime
from harness.cni.schema import validate_error, validate_ipam_result
from pytest_netconform.cni_select import ipam_checks, version_claims

pytestmark = pytest.mark.area("CNI spec")
VERSIONS = ["0.4.0", "1.0.0", "1.1.0"]
CONTAINER, NETNS, IFNAME = "netconform-ipam-direct", "/run/netns/netconform-ipam-direct", "eth0"


def show(runs) -> str:
    """Evidence: what each IPAM run printed (lines start with two spaces)."""
    return "\n".join(f"  {r.command} {r.plugin} exit {r.returncode} {r.problem or ''}: stdout "
                     f"{r.stdout.strip()[:500]!r} stderr {r.stderr.strip()[-300:]!r}" for r in runs)


@pytest.fixture
def ipam(request, cni_network, cni_config, cni_path, tmp_path):
    """(network, [(IPAM type, the delegating plugin's configuration)], a runtime with no lab) for the IPAM
    types this configuration is the first to delegate to; skipped before anything is exec'd but VERSION."""
    backend_class, network = cni_network
    if backend_class.NAME != "cni":
        pytest.skip(f"{network.profile}: backend {backend_class.NAME!r} is not a CNI plugin chain")
    mine = ipam_checks(request.config, cni_config, network)
    runs = version_claims(network, cni_path)
    missing = [t for t in mine if runs.get(t) is None]
    if missing:
        pytest.skip(f"IPAM {', '.join(missing)} not on the CNI path {':'.join(cni_path)}")
    runtime = Runtime(Here(), path=list(cni_path), state_dir=str(tmp_path))
    yield network, [(p["ipam"]["type"], p) for p in network.plugins
                    if isinstance(p.get("ipam"), dict) and p["ipam"].get("type") in mine], runtime, runs
    runtime.close()


def claimed(runs, ipam_type: str) -> list[str]:
    run = runs[ipam_type]
    return list((run.result or {}).get("supportedVersions") or [])


def reservation(runtime, network, plugin: dict, address: str) -> str | None:
    """host-local's reservation of ``address`` (the file it names, in the network's directory of its
    dataDir): its content, or None when there is none."""
    data_dir = plugin["ipam"].get("dataDir") or os.path.join(runtime.plugin_state.directory, "networks")
    try:
        with open(os.path.join(data_dir, network.name, address)) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.spec("SPEC-104", "SPEC-121", "SPEC-164", "SPEC-166", "SPEC-191", "SPEC-192", "SPEC-193", "SPEC-201")
def test_ipam_add_answers_the_abbreviated_result_reserves_and_del_releases(ipam, version):
    """ADD of the IPAM alone, as delegated: exit 0 and the abbreviated result valid in ``version`` (every
    problem its own line, naming its statements); host-local keeps the address reserved for this container
    until DEL, which releases it."""
    network, plugins, runtime, runs = ipam
    problems = []
    for ipam_type, plugin in plugins:
        if version not in claimed(runs, ipam_type):
            pytest.skip(f"{ipam_type} does not claim {version} (supportedVersions {claimed(runs, ipam_type)})")
        conf = runtime.prepare(network, plugin, None, None, version)
        add = runtime.exec("ADD", ipam_type, conf, CONTAINER, NETNS, IFNAME)
        if add.returncode != 0 or add.result is None:
            problems.append(f"{'SPEC-191' if version == '0.4.0' else 'SPEC-121'}: {add.describe()}\n{show([add])}")
            continue
        found = validate_ipam_result(add.result, version)
        addresses = [ip["address"].split("/")[0] for ip in add.result.get("ips") or []
                     if isinstance(ip, dict) and isinstance(ip.get("address"), str)]
        if ipam_type == "host-local":
            held = {a: reservation(runtime, network, plugin, a) for a in addresses}
            found += [f"SPEC-104: {a} is not reserved for {CONTAINER} (host-local's file: {text!r})"
                      for a, text in held.items() if text is None or CONTAINER not in text]
        delete = runtime.exec("DEL", ipam_type, conf, CONTAINER, NETNS, IFNAME)
        if delete.returncode != 0 or delete.problem:
            found.append(f"SPEC-104: DEL of the IPAM's own reservation failed: {delete.describe()}")
        elif ipam_type == "host-local":
            found += [f"SPEC-104: DEL left {a} reserved ({text!r})" for a in addresses
                      if (text := reservation(runtime, network, plugin, a)) is not None]
        problems += [*found, json.dumps(add.result), show([add, delete])] if found else []
    assert not problems, "\n".join(problems)


@pytest.mark.spec("SPEC-194")
def test_ipam_refuses_a_cni_version_it_does_not_claim_with_code_1(ipam):
    """spec-v0.4.0, IPAM Interface: "If the cniVersion in the network configuration is not supported by the
    IPAM plugin, the plugin should return an error code 1". Asked in a version newer than any it claims; the
    twin is the ADD in a claimed version (the test above)."""
    network, plugins, runtime, runs = ipam
    problems = []
    for ipam_type, plugin in plugins:
        unsupported = "99.0.0"  # newer than any CNI version: claimed by none
        run = runtime.exec("ADD", ipam_type, runtime.prepare(network, plugin, None, None, unsupported),
                           CONTAINER, NETNS, IFNAME)
        code = (run.error or {}).get("code")
        if run.returncode == 0 or run.error is None or code != 1:
            problems.append(f"SPEC-194: ADD in cniVersion {unsupported}: {run.describe()}, not error code 1\n"
                            f"{show([run])}")
        elif validate_error(run.error, unsupported, require_version=False):
            problems.append(f"SPEC-194: {validate_error(run.error, unsupported, require_version=False)}")
    assert not problems, "\n".join(problems)
