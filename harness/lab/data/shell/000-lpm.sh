# 000-lpm: document 000 (000_c2cbd10f7d3e05d0.txt), section "路由查找算法 / 路由类型详解"
# Verbatim: the route kinds (`ip route` lines written as `ip route add`), the policy example,
# and the proxy_arp sysctl of "Calico 中的 Proxy ARP". Stand-in: the next hops the routes
# name (lan 10.0.0.254, one gateway per prefix of the lookup example, gw100 10.0.2.1) and the pod.
# stand-in: the routers, LAN and pod the document's tables point at, each a namespace on a veth
ip netns add pod
ip netns add lan
ip netns add gw24
ip netns add gw8
ip netns add gwdefault
ip netns add gw100
ip link add cali12345 type veth peer name eth0 netns pod
ip link add eth0 type veth peer name eth0 netns lan
ip link add to-gw24 type veth peer name eth0 netns gw24
ip link add to-gw8 type veth peer name eth0 netns gw8
ip link add to-gwdefault type veth peer name eth0 netns gwdefault
ip link add to-gw100 type veth peer name eth0 netns gw100
ip link set cali12345 up
ip netns exec pod ip addr add 10.0.1.5/32 dev eth0
ip netns exec pod ip link set eth0 up
ip netns exec pod ip route add 169.254.1.1 dev eth0
ip netns exec pod ip route add default via 169.254.1.1 dev eth0
ip addr add 10.0.0.1/24 dev eth0
ip link set eth0 up
ip netns exec lan ip addr add 10.0.0.254/24 dev eth0
ip netns exec lan ip link set eth0 up
ip netns exec lan ip route add default via 10.0.0.1
ip addr add 172.16.24.1/24 dev to-gw24
ip link set to-gw24 up
ip netns exec gw24 ip addr add 172.16.24.2/24 dev eth0
ip netns exec gw24 ip link set eth0 up
ip addr add 172.16.8.1/24 dev to-gw8
ip link set to-gw8 up
ip netns exec gw8 ip addr add 172.16.8.2/24 dev eth0
ip netns exec gw8 ip link set eth0 up
ip addr add 172.16.0.1/24 dev to-gwdefault
ip link set to-gwdefault up
ip netns exec gwdefault ip addr add 172.16.0.2/24 dev eth0
ip netns exec gwdefault ip link set eth0 up
ip addr add 10.0.2.254/24 dev to-gw100
ip link set to-gw100 up
ip netns exec gw100 ip addr add 10.0.2.1/24 dev eth0
ip netns exec gw100 ip link set eth0 up
# lab: forwarding on (the host is the router of the lookup example) and no proxy delay
sysctl -w net.ipv4.ip_forward=1
sysctl -w net.ipv4.neigh.cali12345.proxy_delay=0
# "Calico 中的 Proxy ARP"
sysctl net.ipv4.conf.cali12345.proxy_arp=1
# lab: "路由查找算法": the prefixes the lookup of 10.0.1.5 walks, each to its own next hop
ip route add 10.0.1.0/24 via 172.16.24.2
ip route add 10.0.0.0/8 via 172.16.8.2
ip route add default via 172.16.0.2
# "路由类型详解": the connected route 10.0.0.0/24 dev eth0 comes from `ip addr add` above;
# left out: the static example 10.1.0.0/24 via 10.0.0.254 (the lab does not model 10.1.0.0/24)
ip route add 10.0.1.5 dev cali12345 scope link
ip route add blackhole 192.168.0.0/16
ip rule add from 10.0.1.0/24 table 100
ip route add default via 10.0.2.1 table 100
#### teardown
ip rule del from 10.0.1.0/24 table 100
ip route flush table 100
ip netns del pod
ip netns del lan
ip netns del gw24
ip netns del gw8
ip netns del gwdefault
ip netns del gw100
ip route del blackhole 192.168.0.0/16
