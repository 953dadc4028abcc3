# 004-flannel-vxlan: document 004 (004_c7abfed73094a323.txt), section "Flannel / VXLAN"
# The document's commands (etcdctl put, ./flanneld) need etcd and flanneld: left out. What
# flanneld's VXLAN backend programs on each node (flannel.1, a route, a neighbour and an FDB
# entry per remote node) and cni0 are `# lab:` below, FLANNEL_MTU=1450.
# left out: etcdctl put /coreos.com/network/config '{"Network":"100.64.0.0/16", "Backend": {"Type": "udp"}}'
# left out: ./flanneld --etcd-endpoints=... --subnet-file=/run/flannel/subnet.env --iface=eth0
# stand-in: the document's hosts are namespaces here (node1, node2), their NIC eth0 a veth to
# the bridge "underlay" in this namespace, the physical switch between them
ip link add underlay type bridge
ip link set underlay up
ip netns add node1
ip netns add node2
ip link add node1-eth0 type veth peer name eth0 netns node1
ip link add node2-eth0 type veth peer name eth0 netns node2
ip link set node1-eth0 master underlay
ip link set node2-eth0 master underlay
ip link set node1-eth0 up
ip link set node2-eth0 up
ip netns exec node1 ip addr add 172.16.0.1/24 dev eth0
ip netns exec node1 ip link set eth0 up
ip netns exec node2 ip addr add 172.16.0.2/24 dev eth0
ip netns exec node2 ip link set eth0 up
ip netns exec node1 sysctl -w net.ipv4.ip_forward=1
ip netns exec node2 sysctl -w net.ipv4.ip_forward=1
# lab: what the CNI bridge plugin makes on each node: cni0 with the node's gateway, a pod per veth
ip netns exec node1 ip link add cni0 type bridge
ip netns exec node1 ip link set cni0 mtu 1450
ip netns exec node1 ip addr add 10.244.1.1/24 dev cni0
ip netns exec node1 ip link set cni0 up
ip netns exec node2 ip link add cni0 type bridge
ip netns exec node2 ip link set cni0 mtu 1450
ip netns exec node2 ip addr add 10.244.2.1/24 dev cni0
ip netns exec node2 ip link set cni0 up
ip netns add pod1a
ip netns exec node1 ip link add veth-pod1a mtu 1450 type veth peer name eth0 mtu 1450 netns pod1a
ip netns exec node1 ip link set veth-pod1a master cni0
ip netns exec node1 ip link set veth-pod1a up
ip netns exec pod1a ip addr add 10.244.1.2/24 dev eth0
ip netns exec pod1a ip link set eth0 up
ip netns exec pod1a ip route add default via 10.244.1.1
ip netns add pod1b
ip netns exec node1 ip link add veth-pod1b mtu 1450 type veth peer name eth0 mtu 1450 netns pod1b
ip netns exec node1 ip link set veth-pod1b master cni0
ip netns exec node1 ip link set veth-pod1b up
ip netns exec pod1b ip addr add 10.244.1.3/24 dev eth0
ip netns exec pod1b ip link set eth0 up
ip netns exec pod1b ip route add default via 10.244.1.1
ip netns add pod2a
ip netns exec node2 ip link add veth-pod2a mtu 1450 type veth peer name eth0 mtu 1450 netns pod2a
ip netns exec node2 ip link set veth-pod2a master cni0
ip netns exec node2 ip link set veth-pod2a up
ip netns exec pod2a ip addr add 10.244.2.2/24 dev eth0
ip netns exec pod2a ip link set eth0 up
ip netns exec pod2a ip route add default via 10.244.2.1
# lab: flannel.1 on each node (VNI 1, Linux port 8472, the node's public IP, no learning, the
# lease's VtepMAC), its /32, and for the other node a route, a neighbour and an FDB entry
ip netns exec node1 ip link add flannel.1 address 02:f1:a0:00:01:00 mtu 1450 type vxlan id 1 dstport 8472 local 172.16.0.1 dev eth0 nolearning
ip netns exec node1 ip addr add 10.244.1.0/32 dev flannel.1
ip netns exec node1 ip link set flannel.1 up
ip netns exec node2 ip link add flannel.1 address 02:f1:a0:00:02:00 mtu 1450 type vxlan id 1 dstport 8472 local 172.16.0.2 dev eth0 nolearning
ip netns exec node2 ip addr add 10.244.2.0/32 dev flannel.1
ip netns exec node2 ip link set flannel.1 up
ip netns exec node1 ip route add 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink
ip netns exec node1 ip neigh add 10.244.2.0 lladdr 02:f1:a0:00:02:00 dev flannel.1 nud permanent
ip netns exec node1 bridge fdb append 02:f1:a0:00:02:00 dev flannel.1 dst 172.16.0.2 self permanent
ip netns exec node2 ip route add 10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink
ip netns exec node2 ip neigh add 10.244.1.0 lladdr 02:f1:a0:00:01:00 dev flannel.1 nud permanent
ip netns exec node2 bridge fdb append 02:f1:a0:00:01:00 dev flannel.1 dst 172.16.0.1 self permanent
#### teardown
ip netns del pod1a
ip netns del pod1b
ip netns del pod2a
ip netns del node1
ip netns del node2
ip link del underlay
