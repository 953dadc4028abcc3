# 004-tuntap: document 004 (004_c7abfed73094a323.txt), section "TAP/TUN"
# The document gives no commands here (a description, a table and two pictures): every command
# below is the lab's, in the documents' ip style, as `# lab:` or stand-in lines.
# lab: a TAP is a layer-2 NIC and can be bridged: tap0 a port of br0
ip link add br0 type bridge
ip link set br0 up
ip tuntap add tap0 mode tap
ip link set tap0 master br0
ip link set tap0 up
# lab: a TUN is a layer-3 point-to-point device: tun0 10.8.0.1/24 and the remote site 10.9.0.0/24 into it
ip tuntap add tun0 mode tun
ip addr add 10.8.0.1/24 dev tun0
ip link set tun0 up
ip route add 10.9.0.0/24 dev tun0
# stand-in: a LAN next to tap0 on br0, the site the TAP tunnel would join
ip netns add ns1
ip link add veth0 type veth peer name eth0 netns ns1
ip link set veth0 master br0
ip link set veth0 up
ip netns exec ns1 ip addr add 192.168.100.2/24 dev eth0
ip netns exec ns1 ip link set eth0 up
#### teardown
ip netns del ns1
ip link del br0
ip tuntap del tap0 mode tap
ip tuntap del tun0 mode tun
