# 003-example1: document 003 (003_3a7f4934ecf0af24.txt), section "示例1：基础veth-pair创建与跨命名空间通信" (steps 1-4)
# Verbatim. Left out: the script's opening clean-up (`ip netns delete ... 2>/dev/null`: it
# fails on a fresh host and `sh -e` would stop), the echos, the pings, `ip -d link show`, ethtool.
ip netns add ns1
ip netns add ns2
ip link add veth0 type veth peer name veth1
ip link set veth0 netns ns1
ip link set veth1 netns ns2
ip netns exec ns1 ip addr add 192.168.1.1/24 dev veth0
ip netns exec ns1 ip link set veth0 up
ip netns exec ns1 ip link set lo up
ip netns exec ns2 ip addr add 192.168.1.2/24 dev veth1
ip netns exec ns2 ip link set veth1 up
ip netns exec ns2 ip link set lo up
#### teardown
# the script's own clean-up lines; veth0 goes with ns1
ip netns delete ns1
ip netns delete ns2
