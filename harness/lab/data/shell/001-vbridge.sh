# 001-vbridge: document 001 (001_bac7d6736c56b111.txt), section "实践" (steps 1-4)
# Verbatim: steps 1-4. Left out: what only displays or tests (ip netns ls, bridge link, route -n,
# arp, `sysctl net.ipv4.ip_forward`, the pings). Stand-in: ens33, its gateway and 8.8.8.8.
# the machine: the document's host has ens33 and its gateway as hardware; the lab (and
# so this script, for the same lab both ways) makes a stand-in in the same ip style
ip netns add upstream
ip link add ens33 type veth peer name eth0 netns upstream
ip addr add 192.168.17.10/24 dev ens33
ip link set ens33 up
ip netns exec upstream ip addr add 192.168.17.2/24 dev eth0
ip netns exec upstream ip addr add 8.8.8.8/32 dev eth0
ip netns exec upstream ip link set eth0 up
ip route add default via 192.168.17.2
# step 1: three network namespaces
ip netns add ns1
ip netns add ns2
ip netns add ns3
# step 2: the virtual switch, three veth pairs, addresses, links up
ip link add vbridge type bridge
ip link set dev vbridge up
ip link add veth-1 type veth peer name veth-1-br
ip link add veth-2 type veth peer name veth-2-br
ip link add veth-3 type veth peer name veth-3-br
ip link set veth-1 netns ns1
ip link set veth-1-br master vbridge
ip link set veth-2 netns ns2
ip link set veth-2-br master vbridge
ip link set veth-3 netns ns3
ip link set veth-3-br master vbridge
ip netns exec ns1 ip addr add 192.168.28.1/24 dev veth-1
ip netns exec ns2 ip addr add 192.168.28.2/24 dev veth-2
ip netns exec ns3 ip addr add 192.168.28.3/24 dev veth-3
ip netns exec ns1 ip link set veth-1 up
ip link set dev veth-1-br up
ip netns exec ns2 ip link set veth-2 up
ip link set dev veth-2-br up
ip netns exec ns3 ip link set veth-3 up
ip link set dev veth-3-br up
# step 3: the bridge as the namespaces' gateway
ip addr add 192.168.28.5/24 dev vbridge
ip netns exec ns1 ip route add default via 192.168.28.5
ip netns exec ns2 ip route add default via 192.168.28.5
ip netns exec ns3 ip route add default via 192.168.28.5
# step 4: forwarding and NAT to the outside
sysctl -w net.ipv4.ip_forward=1
iptables -t nat -A POSTROUTING -s 192.168.28.0/24 -j MASQUERADE
#### teardown
ip netns del upstream
ip netns del ns1
ip netns del ns2
ip netns del ns3
ip link del vbridge
iptables -t nat -F POSTROUTING
