# 004-flannel-udp: document 004 (004_c7abfed73094a323.txt), section "Flannel / UDP"
# The document's commands (etcdctl put, ./flanneld) need etcd and flanneld: left out. What they
# make (its step 2: "a TUN named flannel0"; cni0; subnet.env FLANNEL_MTU=1472) is `# lab:` below.
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
ip netns exec node1 ip link set cni0 mtu 1472
ip netns exec node1 ip addr add 10.244.1.1/24 dev cni0
ip netns exec node1 ip link set cni0 up
ip netns exec node2 ip link add cni0 type bridge
ip netns exec node2 ip link set cni0 mtu 1472
ip netns exec node2 ip addr add 10.244.2.1/24 dev cni0
ip netns exec node2 ip link set cni0 up
ip netns add pod1a
ip netns exec node1 ip link add veth-pod1a mtu 1472 type veth peer name eth0 mtu 1472 netns pod1a
ip netns exec node1 ip link set veth-pod1a master cni0
ip netns exec node1 ip link set veth-pod1a up
ip netns exec pod1a ip addr add 10.244.1.2/24 dev eth0
ip netns exec pod1a ip link set eth0 up
ip netns exec pod1a ip route add default via 10.244.1.1
ip netns add pod2a
ip netns exec node2 ip link add veth-pod2a mtu 1472 type veth peer name eth0 mtu 1472 netns pod2a
ip netns exec node2 ip link set veth-pod2a master cni0
ip netns exec node2 ip link set veth-pod2a up
ip netns exec pod2a ip addr add 10.244.2.2/24 dev eth0
ip netns exec pod2a ip link set eth0 up
ip netns exec pod2a ip route add default via 10.244.2.1
# lab: flanneld's step 2, the TUN flannel0 with the lease's first address and the cluster prefix
# (its connected route 10.244.0.0/16 is the cluster route), MTU FLANNEL_MTU=1472
ip netns exec node1 ip tuntap add flannel0 mode tun
ip netns exec node1 ip link set flannel0 mtu 1472
ip netns exec node1 ip addr add 10.244.1.0/16 dev flannel0
ip netns exec node1 ip link set flannel0 up
ip netns exec node2 ip tuntap add flannel0 mode tun
ip netns exec node2 ip link set flannel0 mtu 1472
ip netns exec node2 ip addr add 10.244.2.0/16 dev flannel0
ip netns exec node2 ip link set flannel0 up
#### teardown
ip netns del pod1a
ip netns del pod2a
ip netns del node1
ip netns del node2
ip link del underlay
