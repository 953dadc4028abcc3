# 000-calico-ipip: document 000 (000_c2cbd10f7d3e05d0.txt), section "Calico 路由示例"
# The document shows only a node's routes (ip route | grep cali); the rest is the lab's, in the
# same ip style: two nodes on an underlay switch, tunl0 as felix sets it up, a pod on each node
# as in step 7. The routes to the other node's pods are the document's IPIP line (node1) and
# its mirror (node2); its BGP line "via 192.168.1.102 dev eth0 proto bird" is the suite's twin.
# the machine: the nodes and the physical switch (lab: the bridge "underlay" in the host, whose
# address 192.168.1.1 is the underlay's router)
ip link add underlay type bridge
ip addr add 192.168.1.1/24 dev underlay
ip link set underlay up
ip netns add node1
ip netns add node2
ip netns exec node1 ip link set lo up
ip netns exec node2 ip link set lo up
ip link add node1-eth0 type veth peer name eth0 netns node1
ip link add node2-eth0 type veth peer name eth0 netns node2
ip link set node1-eth0 master underlay
ip link set node2-eth0 master underlay
ip link set node1-eth0 up
ip link set node2-eth0 up
ip netns exec node1 ip addr add 192.168.1.101/24 dev eth0
ip netns exec node1 ip link set eth0 up
ip netns exec node2 ip addr add 192.168.1.102/24 dev eth0
ip netns exec node2 ip link set eth0 up
ip netns exec node1 sysctl -w net.ipv4.ip_forward=1
ip netns exec node2 sysctl -w net.ipv4.ip_forward=1
# lab: tunl0 as felix makes it: the ipip module's own device (EEXIST when the module made it)
ip netns exec node1 ip link add tunl0 type ipip 2>/dev/null || ip netns exec node1 ip link show tunl0 >/dev/null
ip netns exec node2 ip link add tunl0 type ipip 2>/dev/null || ip netns exec node2 ip link show tunl0 >/dev/null
ip netns exec node1 ip addr add 10.244.1.0/32 dev tunl0
ip netns exec node1 ip link set tunl0 up
ip netns exec node2 ip addr add 10.244.2.0/32 dev tunl0
ip netns exec node2 ip link set tunl0 up
# lab: a pod on each node, as in step 7 (cali1234abcd is the document's name, cali2222abcd the lab's)
ip netns add pod1
ip netns add pod2
ip netns exec node1 ip link add cali1234abcd type veth peer name eth0 netns pod1
ip netns exec node2 ip link add cali2222abcd type veth peer name eth0 netns pod2
ip netns exec pod1 ip addr add 10.244.1.2/32 dev eth0
ip netns exec pod1 ip link set eth0 up
ip netns exec pod1 ip link set lo up
ip netns exec pod1 ip route add 169.254.1.1 dev eth0
ip netns exec pod1 ip route add default via 169.254.1.1 dev eth0
ip netns exec pod2 ip addr add 10.244.2.2/32 dev eth0
ip netns exec pod2 ip link set eth0 up
ip netns exec pod2 ip link set lo up
ip netns exec pod2 ip route add 169.254.1.1 dev eth0
ip netns exec pod2 ip route add default via 169.254.1.1 dev eth0
ip netns exec node1 ip link set cali1234abcd up
ip netns exec node2 ip link set cali2222abcd up
ip netns exec node1 sysctl -w net.ipv4.conf.cali1234abcd.proxy_arp=1
ip netns exec node1 sysctl -w net.ipv4.neigh.cali1234abcd.proxy_delay=0
ip netns exec node2 sysctl -w net.ipv4.conf.cali2222abcd.proxy_arp=1
ip netns exec node2 sysctl -w net.ipv4.neigh.cali2222abcd.proxy_delay=0
# the document's routes: 「10.244.1.2 dev cali1234abcd scope link」, and the IPIP line
ip netns exec node1 ip route add 10.244.1.2 dev cali1234abcd scope link
ip netns exec node1 ip route add 10.244.2.0/24 via 192.168.1.102 dev tunl0 proto bird onlink
ip netns exec node2 ip route add 10.244.2.2 dev cali2222abcd scope link
ip netns exec node2 ip route add 10.244.1.0/24 via 192.168.1.101 dev tunl0 proto bird onlink
# lab: the nodes' default route, to the underlay's router
ip netns exec node1 ip route add default via 192.168.1.1
ip netns exec node2 ip route add default via 192.168.1.1
#### teardown
ip netns del pod1
ip netns del pod2
ip netns del node1
ip netns del node2
ip link del underlay
