# 004-docker-nat: document 004 (004_c7abfed73094a323.txt), section "NAT: SNAT / DNAT"
# The document shows listings, not commands: its `iptables -t nat -S DOCKER` lines are run as
# `iptables -t nat` + the line, verbatim; the rest is Docker's doing, a stand-in or `# lab:`.
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
# "DNAT": `iptables -t nat -S DOCKER` as commands; left out: the other -A DOCKER lines (of the
# second network only br-c022a16a148d and 172.18.0.2 are in the lab, none of its published ports)
iptables -t nat -N DOCKER
iptables -t nat -A DOCKER ! -i docker0 -p tcp -m tcp --dport 18862 -j DNAT --to-destination 172.17.0.4:80
# lab: the DOCKER chain reached as Docker hooks it (the document shows only its contents)
iptables -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
iptables -t nat -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
# "SNAT": the listed "MASQUERADE 0 -- 172.17.0.0/16 0.0.0.0/0" is, with the interface that
# `-L -n` hides, Docker's rule below (lab: `! -o docker0`); "MASQUERADE 0 -- 172.18.0.0/16", listed
# first, is Docker's rule for the second network's bridge (lab: `! -o br-c022a16a148d`)
iptables -t nat -A POSTROUTING -s 172.18.0.0/16 ! -o br-c022a16a148d -j MASQUERADE
iptables -t nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
#### teardown
iptables -t nat -F
iptables -t nat -X DOCKER
ip netns del container
ip netns del container2
ip netns del outside
ip netns del container18
ip link del docker0
ip link del br-c022a16a148d
