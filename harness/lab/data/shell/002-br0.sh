# 002-br0: document 002 (002_ed1522c8ffe119d9.txt), section "高级应用:结合网桥"
# Verbatim but for `sudo `, one command a line. The section builds on the Demo: its ns1, its
# veth pair and ns1's address are the Demo's commands (ns2 left out: veth-ns2 stays on the host).
# from the Demo: ns1, the pair, ns1's end (ns2 is not part of the bridge variant)
ip netns add ns1
ip link add veth-ns1 type veth peer name veth-ns2
# the bridge variant
ip link add name br0 type bridge
ip link set br0 up
ip link set veth-ns1 netns ns1
ip link set veth-ns2 master br0
ip link set veth-ns2 up
ip addr add 192.168.1.254/24 dev br0
# from the Demo: ns1's address, link and lo up (before the default route, which needs them)
ip netns exec ns1 ip addr add 192.168.1.1/24 dev veth-ns1
ip netns exec ns1 ip link set veth-ns1 up
ip netns exec ns1 ip link set lo up
# the bridge variant: the container's gateway
ip netns exec ns1 ip route add default via 192.168.1.254
#### teardown
ip netns delete ns1
ip link del br0
