# 003-example2: document 003 (003_3a7f4934ecf0af24.txt), section "示例2：通过veth连接容器与主机（带网桥）" (steps 1-6)
# Verbatim. Left out: the opening clean-up (fails on a fresh host under `sh -e`), echos, pings,
# brctl, `ip addr show`, `route -n`. Stand-in: the host's uplink eth0 and the internet.
# the machine: the document's host has eth0 to the internet ("需要主机有互联网连接") as hardware;
# the lab makes a stand-in in the same ip style: eth0 192.168.1.100/24 to "internet" (also 8.8.8.8)
ip netns add internet
ip link add eth0 type veth peer name eth0 netns internet
ip addr add 192.168.1.100/24 dev eth0
ip link set eth0 up
ip netns exec internet ip addr add 192.168.1.1/24 dev eth0
ip netns exec internet ip addr add 8.8.8.8/32 dev eth0
ip netns exec internet ip link set eth0 up
ip route add default via 192.168.1.1
# step 1
ip netns add container-ns
# step 2
ip link add br0 type bridge
ip addr add 10.1.1.1/24 dev br0
ip link set br0 up
# step 3
ip link add veth-cont type veth peer name veth-host
# step 4
ip link set veth-cont netns container-ns
ip link set veth-host master br0
ip link set veth-host up
# step 5
ip netns exec container-ns ip addr add 10.1.1.2/24 dev veth-cont
ip netns exec container-ns ip link set veth-cont up
ip netns exec container-ns ip link set lo up
ip netns exec container-ns ip route add default via 10.1.1.1
# step 6
sysctl -w net.ipv4.ip_forward=1
# lab: FORWARD policy DROP, which the two FORWARD rules rely on (Docker sets it; Debian does not)
iptables -P FORWARD DROP
iptables -t nat -A POSTROUTING -s 10.1.1.0/24 -j MASQUERADE
iptables -A FORWARD -i br0 -o eth0 -j ACCEPT
iptables -A FORWARD -i eth0 -o br0 -m state --state RELATED,ESTABLISHED -j ACCEPT
#### teardown
# the script's own clean-up lines (veth-host first: it takes veth-cont with it), then the rules
ip link delete veth-host
ip netns delete container-ns
ip link delete br0
iptables -t nat -F POSTROUTING
iptables -F FORWARD
iptables -P FORWARD ACCEPT
ip netns del internet
