"""CONVENTIONS.md (containernetworking/cni) on ``args`` and ``CNI_ARGS``, and the spec's ``args`` field
(spec-v0.4.0, SPEC-177), on the address the pod really got (its eth0 in the kernel): host-local asked for an
address with CNI_ARGS' ``IP`` field and with ``args.cni.ips``; data in ``args`` a plugin does not understand
is ignored; and when both carry the address, "the plugin must ignore the CNI_ARGS Field" (CONV-018).

These are host-local's conventions: the checks run once per build, in the smallest configuration of the run
that delegates to host-local (pytest_netconform.cni_select.ipam_checks, smallest=True: the fewest plugins, then
ranges), in the cniVersion the ``cni`` fixture asks it, one lab and a pod per request. The chain's plugins
are exec'd here with CNI_ARGS and ``args`` (the runtime's ADD sends neither); each pod is deleted after.
The twin: a pod that asked for no address.
"""
import ipaddress

import pytest

from pytest_netconform.cni_select import ipam_checks
from pytest_netconform.deviations import verdict

pytestmark = pytest.mark.area("CNI spec")
UNKNOWN_ARGS = {"netconform.example": {"meaningless": True}}  # data no plugin understands


@pytest.fixture
def net(request, cni_network, cni_config, cni_path):  # cni_path: parametrized by --impl
    backend_class, network = cni_network
    if backend_class.NAME != "cni":
        pytest.skip(f"{network.profile}: backend {backend_class.NAME!r} is not a CNI plugin chain")
    if "host-local" not in ipam_checks(request.config, cni_config, network, smallest=True):
        pytest.skip("IP= and args.cni.ips are host-local's: checked in the smallest configuration delegating to it")
    return request.getfixturevalue("cni")


def wanted(network, offset: int) -> str:
    """The address ``offset`` hosts into the chain's first IPv4 host-local range."""
    for plugin in network.plugins:
        for ranges in (plugin.get("ipam") or {}).get("ranges") or []:
            subnet = ipaddress.ip_network(ranges[0]["subnet"])
            if subnet.version == 4:
                return str(subnet.network_address + offset)
    pytest.skip("no IPv4 range in the chain's host-local")


def add(net, pod: str, cni_args: str = "", args: dict | None = None):
    """ADD of the chain for ``pod`` with CNI_ARGS ``cni_args`` and ``args`` in each plugin's configuration:
    (the IPv4 addresses of the pod's eth0 in the kernel, or None when the ADD failed; the runs). The pod is
    deleted after, whatever happened (a runtime DELs after a failed ADD too)."""
    result, runs = None, []
    container, netns = net.container_id(pod), net.netns_path(pod)
    for plugin in net.network.plugins:
        conf = net.runtime.prepare(net.network, {**plugin, **({"args": args} if args else {})}, result, None)
        runs.append(run := net.runtime.exec("ADD", plugin["type"], conf, container, netns, "eth0", args=cni_args))
        if run.returncode != 0 or run.result is None:
            result = None
            break
        result = run.result
    addresses = None
    if result is not None:
        addresses = sorted(a.split("/")[0] for a in net.live.addresses(pod, "eth0") if ":" not in a)
    net.runtime.delete(net.network, container, netns, result)
    return addresses, runs


def show(runs) -> str:
    return "\n".join(f"  {r.command} {r.plugin} exit {r.returncode}: {r.describe()}" for r in runs)


@pytest.mark.spec("SPEC-177", "CONV-014", "CONV-018")
def test_ip_requests_in_cni_args_and_args_and_args_winning(request, net, add_pod):
    """Each pod's eth0 in the kernel: unknown data in args (ignored: SPEC-177, CONV-014; and the twin, an
    address asked by no one), IP= in CNI_ARGS, args.cni.ips, and both IP= and args.cni.ips (args wins:
    CONV-018, when the plugin understands args, which the args.cni.ips pod shows)."""
    from_env, from_args = wanted(net.network, 50), wanted(net.network, 60)
    # IgnoreUnknown=1, as runtimes send it: IP is host-local's field, and the interface plugin, which parses
    # CNI_ARGS too, refuses a key it does not know without it (CONVENTIONS, CNI_ARGS).
    env_args = f"IgnoreUnknown=1;IP={from_env}"
    unknown, unknown_runs = add(net, add_pod("pod1"), args=UNKNOWN_ARGS)
    if unknown is not None:  # the twin: without a request, the pod gets neither address
        assert from_env not in unknown and from_args not in unknown, \
            f"an ADD asking for no address already gave {unknown}:\n{show(unknown_runs)}"
    env, env_runs = add(net, add_pod("pod2"), cni_args=env_args)
    by_args, args_runs = add(net, add_pod("pod3"), args={"cni": {"ips": [from_args]}})
    both, both_runs = add(net, add_pod("pod4"), cni_args=env_args, args={"cni": {"ips": [from_args]}})
    observed = (f"CNI_ARGS IP={from_env}: {env}, args.cni.ips [{from_args}]: {by_args}, "
                f"unknown args: {unknown}, both: {both}")
    problems = []
    if unknown is None:
        problems.append(f"SPEC-177, CONV-014: ADD with data in args it does not understand failed:\n"
                        f"{show(unknown_runs)}")
    understands = by_args == [from_args]
    if understands and both != [from_args]:
        problems.append(f"CONV-018: with IP={from_env} in CNI_ARGS and {from_args} in args.cni.ips the pod got "
                        f"{both if both is not None else 'nothing (ADD failed)'}, not args' address\n{show(both_runs)}")
    if env != [from_env]:  # the twin of the CONV-018 check: CNI_ARGS' IP must be seen to matter
        pytest.fail(f"host-local did not honour IP= in CNI_ARGS ({observed}): CONV-018 cannot be judged\n"
                    f"{show(env_runs)}", pytrace=False)
    if not understands:  # CONV-018 applies only to a plugin that understands args
        pytest.skip(f"host-local does not understand args.cni.ips ({observed}); CONV-018 does not apply\n"
                    f"{show(args_runs)}")
    verdict(request, net, "args-over-cni-args", net.network.cni_version, {"host-local": problems})
