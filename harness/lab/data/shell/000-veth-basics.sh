# 000-veth-basics: document 000 (000_c2cbd10f7d3e05d0.txt), section "创建和配置 veth"
# Verbatim but for the one `ip netns add` the document assumes (it moves veth1 into
# my-namespace without creating it). Left out: `ip link show type veth` (display).
# lab: the document never creates my-namespace; `ip link set veth1 netns` needs it
ip netns add my-namespace
ip link add veth0 type veth peer name veth1
ip link set veth1 netns my-namespace
ip addr add 10.0.0.1/24 dev veth0
ip netns exec my-namespace ip addr add 10.0.0.2/24 dev veth1
ip link set veth0 up
ip netns exec my-namespace ip link set veth1 up
#### teardown
# deleting the namespace deletes veth1 and with it its peer veth0 (the document's "清理")
ip netns del my-namespace
