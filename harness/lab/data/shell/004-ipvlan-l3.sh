# 004-ipvlan-l3: document 004 (004_c7abfed73094a323.txt), section "IPVLAN"
# The document has only the heading: this is its MACVLAN script with ipvlan mode l3 children
# ipvl1/ipvl2, all of it adapted (# lab:). Stand-in: the NIC enp0s8 and the switch behind it.
# the machine: the document's host has enp0s8 on a switch with the gateway 192.168.10.1 as
# hardware; the lab makes a stand-in in the same ip style: enp0s8 a veth (192.168.10.2/24) to
# swp1, a port (hairpin off) of the bridge br0 of the namespace "switch"
ip netns add switch
ip link add enp0s8 type veth peer name swp1 netns switch
ip addr add 192.168.10.2/24 dev enp0s8
ip link set enp0s8 up
ip netns exec switch ip link add br0 type bridge
ip netns exec switch ip link set swp1 master br0
ip netns exec switch ip link set swp1 up
ip netns exec switch ip addr add 192.168.10.1/24 dev br0
ip netns exec switch ip link set br0 up
# lab: nobody can ARP for an l3 child: the switch routes the pods' addresses via the host
ip netns exec switch ip route add 192.168.10.10/32 via 192.168.10.2
ip netns exec switch ip route add 192.168.10.11/32 via 192.168.10.2
# the document's MACVLAN script, adapted: type ipvlan mode l3, child ipvl1 (# lab:)
ip link add link enp0s8 dev ipvl1 type ipvlan mode l3
ip netns add pod-a
# adapted: the document moves and addresses "eth0"; the child it just made is ipvl1
ip link set ipvl1 netns pod-a
ip netns exec pod-a ip addr add 192.168.10.10/24 dev ipvl1
ip netns exec pod-a ip link set ipvl1 up
ip netns exec pod-a ip route add default via 192.168.10.1 dev ipvl1
ip link add link enp0s8 dev ipvl2 type ipvlan mode l3
# lab: the document leaves ipvl2 in the host; here it is pod-b's, next to pod-a's address
ip netns add pod-b
ip link set ipvl2 netns pod-b
ip netns exec pod-b ip addr add 192.168.10.11/24 dev ipvl2
ip netns exec pod-b ip link set ipvl2 up
ip netns exec pod-b ip route add default via 192.168.10.1 dev ipvl2
#### teardown
ip netns del pod-a
ip netns del pod-b
ip netns del switch
