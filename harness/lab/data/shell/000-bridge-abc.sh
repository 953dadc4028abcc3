# 000-bridge-abc: document 000 (000_c2cbd10f7d3e05d0.txt), section "Bridge 命令" (for "MAC 地址学习")
# Verbatim: the state-changing bridge commands. Stand-in: containers A, B, C (the document's
# sequence diagram) as namespaces behind veth1..veth3, made with the document's own
# `ip link add <name> type veth peer name <peer-name> netns <ns>`; their MACs aa:aa.. written out.
# stand-in: the containers A, B and C the document's sequence diagram assumes
ip netns add container-a
ip netns add container-b
ip netns add container-c
ip link add veth1 type veth peer name eth0 netns container-a
ip link add veth2 type veth peer name eth0 netns container-b
ip link add veth3 type veth peer name eth0 netns container-c
ip netns exec container-a ip link set eth0 address 02:00:00:00:aa:aa
ip netns exec container-b ip link set eth0 address 02:00:00:00:bb:bb
ip netns exec container-c ip link set eth0 address 02:00:00:00:cc:cc
ip netns exec container-a ip link set eth0 up
ip netns exec container-b ip link set eth0 up
ip netns exec container-c ip link set eth0 up
# the document's commands
ip link add br0 type bridge
ip link set veth1 master br0
ip link set veth2 master br0
# lab: the diagram's third port veth3 (the document adds only veth1 and veth2)
ip link set veth3 master br0
ip addr add 192.168.100.1/24 dev br0
ip link set br0 up
# left out: `ip link set veth1 nomaster` and `ip link del br0` (they undo the lab; see teardown)
# lab: the ports up (the document brings up only br0; a port that is down forwards nothing)
ip link set veth1 up
ip link set veth2 up
ip link set veth3 up
#### teardown
ip netns del container-a
ip netns del container-b
ip netns del container-c
ip link del br0
