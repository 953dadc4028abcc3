# 000-routed-containers: document 000 (000_c2cbd10f7d3e05d0.txt), section "实验：手动搭建容器网络" (steps 1-6)
# Verbatim but for the `sudo ` prefix (the script runs as root). Left out: ip netns list,
# `ip link | grep veth`, the pings, `ip route`, curl. Stand-in: the host's eth0 and the internet.
# the machine: the document's host has eth0 (192.168.1.100) to the internet as hardware; the
# lab makes a stand-in in the same ip style: the namespace "internet", its gateway and 8.8.8.8
ip netns add internet
ip link add eth0 type veth peer name eth0 netns internet
ip addr add 192.168.1.100/24 dev eth0
ip link set eth0 up
ip netns exec internet ip addr add 192.168.1.1/24 dev eth0
ip netns exec internet ip addr add 8.8.8.8/32 dev eth0
ip netns exec internet ip link set eth0 up
ip route add default via 192.168.1.1
# step 1
ip netns add container1
ip netns add container2
# step 2
ip link add veth-c1 type veth peer name eth0 netns container1
ip link add veth-c2 type veth peer name eth0 netns container2
# step 3
ip netns exec container1 ip addr add 10.0.1.2/24 dev eth0
ip netns exec container1 ip link set eth0 up
ip netns exec container1 ip link set lo up
ip netns exec container2 ip addr add 10.0.2.2/24 dev eth0
ip netns exec container2 ip link set eth0 up
ip netns exec container2 ip link set lo up
ip addr add 10.0.1.1/24 dev veth-c1
ip addr add 10.0.2.1/24 dev veth-c2
ip link set veth-c1 up
ip link set veth-c2 up
# step 4
ip netns exec container1 ip route add default via 10.0.1.1
ip netns exec container2 ip route add default via 10.0.2.1
sysctl -w net.ipv4.ip_forward=1
# step 6
iptables -t nat -A POSTROUTING -s 10.0.1.0/24 -o eth0 -j MASQUERADE
iptables -t nat -A POSTROUTING -s 10.0.2.0/24 -o eth0 -j MASQUERADE
#### teardown
# the document's "清理实验环境", verbatim but for sudo; then the stand-in
ip netns del container1
ip netns del container2
iptables -t nat -F POSTROUTING
ip netns del internet
