"""The CNI spec's errors (SPEC.md of containernetworking/cni, spec-v0.4.0, -v1.0.0, -v1.1.0: Result Types >
Error, and Well-known Error Codes) and CONVENTIONS.md's malformed runtime configuration, on real plugins: a
faulty request is refused with the spec's error code (and at 0.4.0 with no code of 1-99 but 0.4.0's own, each
used only for what it means: SPEC-204); a field value the plugin does not support, if answered with code 2,
names the field's key and value (SPEC-124); a capability argument (runtimeConfig) whose value is malformed is
refused with an error object, and the runtime's DEL after it leaves nothing (CONV-009), while the well-formed
value of the same argument is accepted (the twin).

Each check depends only on the plugin binary and the cniVersion asked: it runs once per binary, in the first
configuration of the run holding it (pytest_netconform.cni_select.owners; an IPAM's, cni_select.ipam_checks),
and the configurations owning none skip before a lab is built. Known deviations go through verdict()
(harness/impl/expectations/<build>.yaml).
"""
import dataclasses
import ipaddress
import json
import sys

import pytest

from harness.cni.reality import leftovers, snapshot
from harness.cni.runtime import CniError, Here, Runtime
from harness.cni.schema import code_2_problems
from pytest_netconform.cni_spec import (PORTS, SPEC_VERSIONS, chain, error_problems, owned,  # noqa: F401 - chain:
                                        requests, show)                                  # a fixture
from pytest_netconform.deviations import verdict

pytestmark = pytest.mark.area("CNI spec")
VERSIONS = pytest.mark.parametrize("version", SPEC_VERSIONS)
ENV_040 = {3}  # 0.4.0's "container unknown or does not exist" may fit a request without (or with a bad) container

FAULTS = {  # case: (environment, spoiling of the request, the code(s) from 1.0.0, the variable code 4 names,
    #                the codes of 0.4.0's table (1, 2, 3, 11) whose meaning fits the fault)
    "unsupported-version": ({}, lambda conf: dict(conf, cniVersion="9.9.9"), {1}, None, {1}),  # 1 in 0.4.0 too
    "no-command": ({"CNI_COMMAND": None}, None, {4}, "CNI_COMMAND", set()),
    "unknown-command": ({"CNI_COMMAND": "FROB"}, None, {4}, "CNI_COMMAND", set()),
    "no-containerid": ({"CNI_CONTAINERID": None}, None, {4}, "CNI_CONTAINERID", ENV_040),
    "invalid-containerid": ({"CNI_CONTAINERID": "-not/valid!"}, None, {4}, "CNI_CONTAINERID", ENV_040),
    "no-netns": ({"CNI_NETNS": None}, None, {4}, "CNI_NETNS", ENV_040),
    "no-ifname": ({"CNI_IFNAME": None}, None, {4}, "CNI_IFNAME", set()),
    "invalid-ifname": ({"CNI_IFNAME": "much-too-long-ifname"}, None, {4}, "CNI_IFNAME", set()),
    "missing-name": ({}, lambda conf: {k: v for k, v in conf.items() if k != "name"}, {7}, None, set()),
    "ipam-not-object": ({}, lambda conf: dict(conf, ipam=5), {6, 7}, None, {2}),  # a value ipam does not support
}


@VERSIONS
@pytest.mark.parametrize("case", list(FAULTS))
@pytest.mark.once_per_binary
@pytest.mark.spec("SPEC-030", "SPEC-021", "SPEC-161", "SPEC-022", "SPEC-023", "SPEC-123", "SPEC-174", "SPEC-125",
                  "SPEC-168", "SPEC-204")
def test_a_faulty_request_is_refused_with_the_spec_error_code(request, chain, version, add_pod, case):
    """From 1.0.0 the code is the table's (SPEC-168); at 0.4.0, whose table has only 1, 2, 3 and 11, a code of
    1-99 must be one of those whose meaning fits the fault, or the plugin's own (100+) (SPEC-204). No request
    here is transient, so 11 ("try again later") never fits."""
    variables, spoil, codes, name, fits_040 = FAULTS[case]
    problems = {}
    for plugin, conf in requests(request, chain, add_pod):
        run = chain.runtime.exec("ADD", plugin, spoil(conf) if spoil else conf, "netconform-pod1", "/run/netns/pod1",
                                 "eth0", env_override=variables)
        problems[plugin] = error_problems(run, version, None if version == "0.4.0" and codes != {1} else codes, name,
                                          fits_040)
    verdict(request, chain, case, version, problems)


# ---------------------------------------------------------------- SPEC-124: code 2 names the key and the value
UNSUPPORTED = {  # plugin type: (a key of its configuration, a value it does not support), refused before it acts
    "bridge": ("vlan", 5000),  # "invalid VLAN ID 5000 (must be between 0 and 4094)"
    "macvlan": ("mode", "netconform-mode"),  # "unknown macvlan mode"
    "ipvlan": ("mode", "netconform-mode"),  # "unknown ipvlan mode"
}


@VERSIONS
@pytest.mark.newest_version_only
@pytest.mark.spec("SPEC-124", "SPEC-022", "SPEC-023", "SPEC-123", "SPEC-174")
def test_an_unsupported_field_value_answered_with_code_2_names_its_key_and_value(
        request, cni_network, cni_config, cni_path, version):
    """SPEC.md Error, code 2 ("Unsupported field in network configuration. The error message must contain the
    key and value of the unsupported field."): each plugin is given a value of one of its own keys it does not
    support. The spec asks for no particular code here, so a plugin's own code (100+) is no finding; a code 2
    must name both, and any refusal must be an error object. Where no plugin answers code 2 the test skips
    saying what each answered (SPEC-124 applies to code 2 only); test_code_2_is_judged_by_the_key_and_value is
    the same judgement's twin."""
    mine = owned(request, cni_network, cni_config, cni_path, version, set(UNSUPPORTED))
    chain = request.getfixturevalue("chain")  # the lab: only now (add_pod, in the signature, would make it first)
    request.getfixturevalue("add_pod")("pod1")
    problems, answers, codes = {}, [], []
    for plugin in (p for p in chain.network.plugins[:1] if p["type"] in mine):
        key, value = UNSUPPORTED[plugin["type"]]
        conf = chain.runtime.prepare(chain.network, dict(plugin, **{key: value}), None, None)
        run = chain.runtime.exec("ADD", plugin["type"], conf, "netconform-pod1", "/run/netns/pod1", "eth0")
        answers.append(f"{plugin['type']} {key}={value!r}: {run.describe()}")
        if run.returncode == 0 and not run.problem:
            continue  # accepted: nothing to say of code 2 (the pod is the lab's, thrown away)
        codes.append(run.error and run.error.get("code"))
        found = error_problems(run, version)  # its last line is the run's evidence when it has a problem
        if not found and (missing := code_2_problems(run.error, key, value)):
            found = [*missing, show([run])]
        problems[plugin["type"]] = found
    verdict(request, chain, "unsupported-field", version, problems)
    if 2 not in codes:
        pytest.skip("SPEC-124 concerns code 2, which no plugin answered: " + "; ".join(answers))


ANSWERING = f"""#!{sys.executable}
# A plugin of the test's own: answers every ADD with the error object in answer.json (stdin's cniVersion).
import json, os, sys
conf = json.load(sys.stdin)
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "answer.json")) as answer:
    print(json.dumps(dict(json.load(answer), cniVersion=conf.get("cniVersion"))))
sys.exit(1)
"""


@pytest.mark.parametrize("msg, judged", [("unsupported field in network configuration", "failing"),
                                         ("unknown macvlan mode: mode=\"netconform-mode\"", "passing")],
                         ids=["neither", "key-and-value"])
def test_code_2_is_judged_by_the_key_and_value(tmp_path, msg, judged):
    """The twin of the SPEC-124 check, on a plugin of the test's own on CNI_PATH answering code 2: without the
    key and value it is judged failing, naming SPEC-124; with both, passing. No lab: the plugin only answers."""
    (tmp_path / "answer.json").write_text(json.dumps({"code": 2, "msg": msg}))
    (tmp_path / "netconform-code-2").write_text(ANSWERING)
    (tmp_path / "netconform-code-2").chmod(0o755)
    runtime = Runtime(Here(), path=[str(tmp_path)], state_dir=str(tmp_path))
    try:
        run = runtime.exec("ADD", "netconform-code-2", {"cniVersion": "1.0.0", "name": "netconform-twin",
                                                        "type": "netconform-code-2", "mode": "netconform-mode"},
                           "netconform-pod1", "/run/netns/pod1", "eth0")
    finally:
        runtime.close()
    assert run.error and run.error.get("code") == 2, f"the test's own plugin did not answer code 2: {run.describe()}"
    found = code_2_problems(run.error, "mode", "netconform-mode")
    if judged == "failing":
        assert found and found[0].startswith("SPEC-124"), f"code 2 {run.error} was not judged failing: {found}"
    else:
        assert not found, f"code 2 {run.error} names the key and value, but was judged failing: {found}"


# ---------------------------------------------------------------- CONV-009: malformed capability arguments
def first_range(network) -> str:
    """The chain's first IPv4 host-local subnet (an address for ``ips``, a range for ``ipRanges``)."""
    for plugin in network.plugins:
        for ranges in (plugin.get("ipam") or {}).get("ranges") or []:
            if ipaddress.ip_network(ranges[0]["subnet"]).version == 4:
                return ranges[0]["subnet"]
    pytest.skip(f"{network.profile}: no IPv4 range in its host-local")


def address_in_range(network, offset: int = 70) -> str:
    subnet = ipaddress.ip_network(first_range(network))
    return f"{subnet.network_address + offset}/{subnet.prefixlen}"


MALFORMED = {  # binary judged: (the plugin type whose runtimeConfig carries it (None: the plugin delegating to
    #              it), capability, malformed value, well-formed value, whether the attachment shows the well-formed
    #              value acted on: (network, its result, the lab's facts while attached, read if called) -> bool)
    "portmap": ("portmap", "portMappings", lambda net: [dict(PORTS[0], hostPort=-1)], lambda net: PORTS,
                lambda net, result, facts: any(str(PORTS[0]["hostPort"]) in fact for fact in facts())),
    "bandwidth": ("bandwidth", "bandwidth", lambda net: {"ingressRate": 8000000, "egressRate": 8000000},  # no burst
                  lambda net: {"ingressRate": 8000000, "ingressBurst": 800000, "egressRate": 8000000,
                               "egressBurst": 800000},
                  lambda net, result, facts: any(fact.endswith("(ifb)") for fact in facts())),  # egress: an ifb device
    "tuning": ("tuning", "mac", lambda net: "not-a-mac", lambda net: "02:00:5e:00:53:09",
               lambda net, result, facts: "02:00:5e:00:53:09" in [i.get("mac") for i in result.get("interfaces", [])]),
    "host-local": (None, "ips", lambda net: ["not-an-address"], lambda net: [address_in_range(net)],
                   lambda net, result, facts: address_in_range(net) in [i.get("address") for i in result["ips"]]),
}


def with_capability(network, binary: str, capability: str):
    """(``network`` cut to its interface plugin and the plugin carrying ``binary``'s argument, which declares
    ``capability``, that plugin's type). Only those two: what the failed ADD leaves is theirs, not that of a plugin
    between them (firewall's rules, which its DEL without a prevResult cannot find). bandwidth's own rates are
    dropped: it reads its runtimeConfig only without them."""
    carrier = MALFORMED[binary][0]
    first, plugins = network.plugins[0], []
    for plugin in network.plugins:
        delegates = isinstance(plugin.get("ipam"), dict) and plugin["ipam"].get("type") == binary
        if plugin["type"] == carrier or (carrier is None and delegates):
            plugin = {k: v for k, v in plugin.items() if not (carrier == "bandwidth" and k.endswith(("Rate", "Burst")))}
            plugin["capabilities"] = {**(plugin.get("capabilities") or {}), capability: True}
            plugins = [plugin] if plugin["type"] == first["type"] else [first, plugin]
            return dataclasses.replace(network, plugins=plugins), plugin["type"]
    pytest.fail(f"{network.profile}: no plugin of the chain carries {binary}'s {capability}", pytrace=False)


@VERSIONS
@pytest.mark.newest_version_only
@pytest.mark.spec("CONV-009", "SPEC-022", "SPEC-023", "SPEC-123", "SPEC-174", "SPEC-031", "SPEC-147", "SPEC-032")
def test_a_malformed_capability_argument_is_refused_and_leaves_nothing(
        request, cni_network, cni_config, cni_path, version):
    """CONVENTIONS.md, Dynamic Plugin specific fields: a plugin "should return an error if it can't act on fields
    that were expected or where the field values were malformed" (CONV-009): each argument in the runtimeConfig
    of the plugin declaring its capability, as a runtime passes it, in the chain cut to the interface plugin and
    that plugin (``with_capability``). The twin first: the well-formed value is accepted and acted on (ADD, then
    DEL; a plugin that ignores it, not knowing the field, is not judged). Then the malformed one: the ADD must fail
    with an error object, and after the runtime's DEL nothing the failed ADD made may be left (SPEC-031,
    SPEC-147), that DEL completing (SPEC-032: plugins "should generally complete a DEL action without error")."""
    mine = owned(request, cni_network, cni_config, cni_path, version, set(MALFORMED))
    chain, add_pod = request.getfixturevalue("chain"), request.getfixturevalue("add_pod")  # the lab: only now
    problems, ignored = {}, []
    for n, binary in enumerate(b for b in MALFORMED if b in mine):
        _, capability, malformed, well_formed, acted_on = MALFORMED[binary]
        network, carrier = with_capability(chain.network, binary, capability)
        good, bad = add_pod(f"pod{2 * n}"), add_pod(f"pod{2 * n + 1}")
        try:
            result = chain.runtime.add(network, chain.container_id(good), chain.netns_path(good), "eth0",
                                       {capability: well_formed(network)})
        except CniError as exc:
            pytest.fail(f"{binary}: the well-formed {capability} {well_formed(network)!r} was refused, so a "
                        f"refusal of a malformed one would say nothing: {exc}\n{show([exc.run] if exc.run else [])}",
                        pytrace=False)
        acted = acted_on(network, result, lambda: snapshot(chain.live).facts)
        chain.runtime.delete(network, chain.container_id(good), chain.netns_path(good), result,
                             runtime_args={capability: well_formed(network)})
        if not acted:  # a field the plugin does not know is not one it was expected to act on
            ignored.append(f"{binary} (runtimeConfig.{capability} {well_formed(network)!r} to {carrier})")
            continue
        before = snapshot(chain.live, chain.state_dir)
        run = undo = None
        try:
            result = chain.runtime.add(network, chain.container_id(bad), chain.netns_path(bad), "eth0",
                                       {capability: malformed(network)})
        except CniError as exc:
            run, undo = exc.run, exc.del_failure
        what = f"runtimeConfig.{capability} {malformed(network)!r} (to {carrier})"
        if run is None:
            problems[binary] = [f"CONV-009: ADD with the malformed {what} succeeded",
                                show(chain.runtime.log[-len(network.plugins):])]
            chain.runtime.delete(network, chain.container_id(bad), chain.netns_path(bad), result,
                                 runtime_args={capability: malformed(network)})
            continue
        found = error_problems(run, version)
        left = leftovers(chain.live, before)
        if left and undo is not None:  # the runtime's DEL (as libcni's) stops at the first plugin that fails
            found += [f"SPEC-032, SPEC-031, SPEC-147: DEL refused the same malformed {what} its ADD refused, so the "
                      f"chain's DEL stopped there and left what the ADD made: {len(left)} facts", f"  {undo}",
                      *(f"  {fact}" for fact in left), show([r for r in (run, undo.run) if r])]
        elif left:
            found += [f"SPEC-031, SPEC-147: after the ADD with the malformed {what} and the runtime's DEL, left "
                      f"{len(left)} facts", *(f"  {fact}" for fact in left), show([run])]
        problems[binary] = found
    if not problems:
        pytest.skip("the well-formed value changed nothing, so the plugin does not act on it and CONV-009 does not "
                    "apply: " + "; ".join(ignored))
    verdict(request, chain, "malformed-capability-argument", version, problems)
