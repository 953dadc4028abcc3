# 004-docker-nat-nft: document 004 (004_c7abfed73094a323.txt), section "NAT: SNAT / DNAT" (as nftables)
# The document's rules (see 004-docker-nat.sh) written as nft commands, the lab's translation:
# no iptables rule; every nft line below is `# lab:`, the rest a stand-in.
# stand-in: the Docker host the document shows (docker0 and two containers, as `docker run`
# makes them) and its uplink eth0 to a client outside; the document gives no commands for these
ip netns add outside
ip link add eth0 type veth peer name eth0 netns outside
ip addr add 192.168.1.100/24 dev eth0
ip link set eth0 up
ip netns exec outside ip addr add 192.168.1.50/24 dev eth0
ip netns exec outside ip link set eth0 up
ip link add docker0 type bridge
ip addr add 172.17.0.1/16 dev docker0
ip link set docker0 up
ip netns add container
ip netns add container2
ip link add veth-c4 type veth peer name eth0 netns container
ip link add veth-c2 type veth peer name eth0 netns container2
ip link set veth-c4 master docker0
ip link set veth-c2 master docker0
ip link set veth-c4 up
ip link set veth-c2 up
ip netns exec container ip addr add 172.17.0.4/16 dev eth0
ip netns exec container ip link set eth0 up
ip netns exec container2 ip addr add 172.17.0.2/16 dev eth0
ip netns exec container2 ip link set eth0 up
# stand-in: the document's second bridge network (its DOCKER lines name br-c022a16a148d, its
# POSTROUTING lists 172.18.0.0/16) with one container, as `docker network create` and `docker run` make them
ip link add br-c022a16a148d type bridge
ip addr add 172.18.0.1/16 dev br-c022a16a148d
ip link set br-c022a16a148d up
ip netns add container18
ip link add veth-c18 type veth peer name eth0 netns container18
ip link set veth-c18 master br-c022a16a148d
ip link set veth-c18 up
ip netns exec container18 ip addr add 172.18.0.2/16 dev eth0
ip netns exec container18 ip link set eth0 up
# the container table the document shows (`route -n`: default via 172.17.0.1; 172.17.0.0/16
# on-link is the connected route of the address above), as commands
ip netns exec container ip route add default via 172.17.0.1
ip netns exec container2 ip route add default via 172.17.0.1
ip netns exec container18 ip route add default via 172.18.0.1
# lab: Docker forwards, and keeps br_netfilter on so bridged traffic meets the nat rules
sysctl -w net.ipv4.ip_forward=1
sysctl -w net.bridge.bridge-nf-call-iptables=1
# lab: table ip nat; the DOCKER chain; "DNAT" 18862 -> 172.17.0.4:80 unless in from docker0
nft add table ip nat
nft add chain ip nat docker
nft add rule ip nat docker iifname != '"docker0"' tcp dport 18862 dnat to 172.17.0.4:80
# lab: the docker chain reached from prerouting and output for local destinations, as Docker does
nft add chain ip nat prerouting '{ type nat hook prerouting priority dstnat; policy accept; }'
nft add rule ip nat prerouting fib daddr type local jump docker
nft add chain ip nat output '{ type nat hook output priority -100; policy accept; }'
nft add rule ip nat output ip daddr != 127.0.0.0/8 fib daddr type local jump docker
# lab: "SNAT": masquerade each network's subnet unless it leaves through its own bridge (172.18 first)
nft add chain ip nat postrouting '{ type nat hook postrouting priority srcnat; policy accept; }'
nft add rule ip nat postrouting ip saddr 172.18.0.0/16 oifname != '"br-c022a16a148d"' masquerade
nft add rule ip nat postrouting ip saddr 172.17.0.0/16 oifname != '"docker0"' masquerade
#### teardown
nft delete table ip nat
ip netns del container
ip netns del container2
ip netns del outside
ip netns del container18
ip link del docker0
ip link del br-c022a16a148d
