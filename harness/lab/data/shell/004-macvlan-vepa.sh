# 004-macvlan-vepa: document 004 (004_c7abfed73094a323.txt), section "MACVLAN / VEPA"
# The MACVLAN script (written for mode bridge) with mode vepa, adapted where marked (it moves and
# addresses "eth0": it means mac1). Stand-in: the physical NIC enp0s8 and the switch behind it.
# the machine: the document's host has enp0s8 on a switch with the gateway 192.168.10.1 as
# hardware; the lab makes a stand-in in the same ip style: enp0s8 a veth (192.168.10.2/24) to
# swp1, a port (hairpin on) of the bridge br0 of the namespace "switch"
ip netns add switch
ip link add enp0s8 type veth peer name swp1 netns switch
ip addr add 192.168.10.2/24 dev enp0s8
ip link set enp0s8 up
ip netns exec switch ip link add br0 type bridge
ip netns exec switch ip link set swp1 master br0
ip netns exec switch bridge link set dev swp1 hairpin on
ip netns exec switch ip link set swp1 up
ip netns exec switch ip addr add 192.168.10.1/24 dev br0
ip netns exec switch ip link set br0 up
# the document's MACVLAN script, adapted: type macvlan mode vepa, child mac1 (# lab:)
ip link add link enp0s8 dev mac1 type macvlan mode vepa
ip netns add pod-a
# adapted: the document moves and addresses "eth0"; the child it just made is mac1
ip link set mac1 netns pod-a
ip netns exec pod-a ip addr add 192.168.10.10/24 dev mac1
ip netns exec pod-a ip link set mac1 up
ip netns exec pod-a ip route add default via 192.168.10.1 dev mac1
ip link add link enp0s8 dev mac2 type macvlan mode vepa
# lab: the document leaves mac2 in the host; here it is pod-b's, next to pod-a's address
ip netns add pod-b
ip link set mac2 netns pod-b
ip netns exec pod-b ip addr add 192.168.10.11/24 dev mac2
ip netns exec pod-b ip link set mac2 up
ip netns exec pod-b ip route add default via 192.168.10.1 dev mac2
#### teardown
ip netns del pod-a
ip netns del pod-b
ip netns del switch
