# 004-br0: document 004 (004_c7abfed73094a323.txt), section "veth" (the Linux Bridge experiment)
# Verbatim. Left out: the pings and `brctl showmacs br0`. Added: `ip link set br0 up`, which
# the document never runs although its pings need it.
ip link add br0 type bridge
ip addr add 192.168.1.10/24 dev br0
# lab: a bridge that is down forwards nothing (its ports stay disabled); the pings need it up
ip link set br0 up
ip netns add ns1
ip link add veth1_ns1 type veth peer name veth1_br
ip link set veth1_ns1 netns ns1
ip link set veth1_br master br0
ip link set veth1_br up
ip netns exec ns1 ip link set veth1_ns1 up
ip netns exec ns1 ip addr add 192.168.1.11/24 dev veth1_ns1
ip netns add ns2
ip link add veth2_ns2 type veth peer name veth2_br
ip link set veth2_ns2 netns ns2
ip link set veth2_br master br0
ip link set veth2_br up
ip netns exec ns2 ip link set veth2_ns2 up
ip netns exec ns2 ip addr add 192.168.1.12/24 dev veth2_ns2
#### teardown
ip netns del ns1
ip netns del ns2
ip link del br0
