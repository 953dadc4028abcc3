# 000-calico: document 000 (000_c2cbd10f7d3e05d0.txt), section "步骤 7：使用 Calico 风格的配置"
# Verbatim but for the `sudo ` prefix. Left out: the first two `ip netns del` (they clean up
# steps 1-6; in a fresh host they fail) and the ping. Stand-in: the host's eth0 and the internet.
# the machine: the document's host has eth0 (192.168.1.100) to the internet as hardware; the
# lab makes a stand-in in the same ip style (proxy ARP answers only what the host routes)
ip netns add internet
ip link add eth0 type veth peer name eth0 netns internet
ip addr add 192.168.1.100/24 dev eth0
ip link set eth0 up
ip netns exec internet ip addr add 192.168.1.1/24 dev eth0
ip netns exec internet ip link set eth0 up
ip route add default via 192.168.1.1
# step 7
ip netns add container1
ip netns add container2
ip link add cali0001 type veth peer name eth0 netns container1
ip link add cali0002 type veth peer name eth0 netns container2
ip netns exec container1 ip addr add 10.244.1.2/32 dev eth0
ip netns exec container1 ip link set eth0 up
ip netns exec container1 ip link set lo up
ip netns exec container1 ip route add 169.254.1.1 dev eth0
ip netns exec container1 ip route add default via 169.254.1.1 dev eth0
ip netns exec container2 ip addr add 10.244.1.3/32 dev eth0
ip netns exec container2 ip link set eth0 up
ip netns exec container2 ip link set lo up
ip netns exec container2 ip route add 169.254.1.1 dev eth0
ip netns exec container2 ip route add default via 169.254.1.1 dev eth0
ip link set cali0001 up
ip link set cali0002 up
sysctl -w net.ipv4.conf.cali0001.proxy_arp=1
sysctl -w net.ipv4.conf.cali0002.proxy_arp=1
ip route add 10.244.1.2 dev cali0001 scope link
ip route add 10.244.1.3 dev cali0002 scope link
sysctl -w net.ipv4.ip_forward=1
# lab: no proxy delay, as Calico's felix sets it (the kernel's default delays replies at random)
sysctl -w net.ipv4.neigh.cali0001.proxy_delay=0
sysctl -w net.ipv4.neigh.cali0002.proxy_delay=0
#### teardown
# the document's "清理实验环境", verbatim but for sudo; then the stand-in
ip netns del container1
ip netns del container2
iptables -t nat -F POSTROUTING
ip netns del internet
