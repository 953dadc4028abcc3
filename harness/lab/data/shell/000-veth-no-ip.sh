# 000-veth-no-ip: document 000 (000_c2cbd10f7d3e05d0.txt), section "veth 的特点" ("无需 IP")
# The commands of "创建和配置 veth", verbatim, without its two `ip addr add`: the claim is
# that the pair works with no IP at all. Left out: `ip link show type veth` (display).
# lab: the document never creates my-namespace; `ip link set veth1 netns` needs it
ip netns add my-namespace
ip link add veth0 type veth peer name veth1
ip link set veth1 netns my-namespace
# left out: ip addr add 10.0.0.1/24 dev veth0, and 10.0.0.2/24 on veth1 (no IP is the point)
ip link set veth0 up
ip netns exec my-namespace ip link set veth1 up
#### teardown
ip netns del my-namespace
