# 004-vlanif: document 004 (004_c7abfed73094a323.txt), section "MACVLAN: macvlan 子接口 vs VLANIF 子接口 (共用主接口的 MAC 地址)"
# The document's MACVLAN child mac1, and beside it on the same parent a VLAN sub-interface the
# document names but does not show (lab: enp0s8.10, VLAN 10, 192.168.20.0/24, pod-v).
# the machine: the document's host has enp0s8 on a switch as hardware; the lab makes a stand-in
# in the same ip style: enp0s8 a veth to swp1 in the namespace "switch" (192.168.10.1/24
# untagged, swp1.10 192.168.20.1/24 on VLAN 10)
ip netns add switch
ip link add enp0s8 type veth peer name swp1 netns switch
ip link set enp0s8 up
ip netns exec switch ip addr add 192.168.10.1/24 dev swp1
ip netns exec switch ip link set swp1 up
ip netns exec switch ip link add link swp1 name swp1.10 type vlan id 10
ip netns exec switch ip addr add 192.168.20.1/24 dev swp1.10
ip netns exec switch ip link set swp1.10 up
# the document's MACVLAN script, for mac1 (adapted: the document moves and addresses "eth0")
ip link add link enp0s8 dev mac1 type macvlan mode bridge
ip netns add pod-a
ip link set mac1 netns pod-a
ip netns exec pod-a ip addr add 192.168.10.10/24 dev mac1
ip netns exec pod-a ip link set mac1 up
# lab: the VLANIF sub-interface on the same parent, in pod-v
ip link add link enp0s8 name enp0s8.10 type vlan id 10
ip netns add pod-v
ip link set enp0s8.10 netns pod-v
ip netns exec pod-v ip addr add 192.168.20.10/24 dev enp0s8.10
ip netns exec pod-v ip link set enp0s8.10 up
#### teardown
ip netns del pod-a
ip netns del pod-v
ip netns del switch
