# 003-example3: document 003 (003_3a7f4934ecf0af24.txt), section "示例3：多veth复杂网络拓扑" (steps 1-5)
# Verbatim. Left out: the opening clean-up (fails on a fresh host under `sh -e`), echos, the
# pings, `ip route show`, `ip neigh show`.
ip netns add router
ip netns add client1
ip netns add client2
ip link add veth-r1 type veth peer name veth-c1
ip link add veth-r2 type veth peer name veth-c2
ip link set veth-r1 netns router
ip link set veth-c1 netns client1
ip link set veth-r2 netns router
ip link set veth-c2 netns client2
ip netns exec router ip addr add 10.0.1.1/24 dev veth-r1
ip netns exec router ip addr add 10.0.2.1/24 dev veth-r2
ip netns exec router ip link set veth-r1 up
ip netns exec router ip link set veth-r2 up
ip netns exec client1 ip addr add 10.0.1.100/24 dev veth-c1
ip netns exec client1 ip link set veth-c1 up
ip netns exec client1 ip link set lo up
ip netns exec client1 ip route add default via 10.0.1.1
ip netns exec client2 ip addr add 10.0.2.100/24 dev veth-c2
ip netns exec client2 ip link set veth-c2 up
ip netns exec client2 ip link set lo up
ip netns exec client2 ip route add default via 10.0.2.1
ip netns exec router sysctl -w net.ipv4.ip_forward=1
#### teardown
# the script's own clean-up lines (veth-r1 and veth-r2 go with the router namespace)
ip netns delete router
ip netns delete client1
ip netns delete client2
