# 002-veth-pair: document 002 (002_ed1522c8ffe119d9.txt), section "Demo：手动创建 veth pair 并实现两个网络命名空间的通信"
# Verbatim but for the `sudo ` prefix, one command a line (the page runs some together on
# one line). Left out: the ping.
ip netns add ns1
ip netns add ns2
ip link add veth-ns1 type veth peer name veth-ns2
ip link set veth-ns1 netns ns1
ip link set veth-ns2 netns ns2
ip netns exec ns1 ip addr add 192.168.1.1/24 dev veth-ns1
ip netns exec ns1 ip link set veth-ns1 up
ip netns exec ns2 ip addr add 192.168.1.2/24 dev veth-ns2
ip netns exec ns2 ip link set veth-ns2 up
ip netns exec ns1 ip link set lo up
ip netns exec ns2 ip link set lo up
#### teardown
# the document's "(可选)清理环境"
ip netns delete ns1
ip netns delete ns2
