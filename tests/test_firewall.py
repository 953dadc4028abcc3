"""firewall.filter_policies: built-in filter chains with a policy are made with it by nft (one
commit, ~3 ms) instead of by iptables -P (a chain update, ~15 ms); everything else stays
with iptables-restore. That the result reads the same is tests/test_doc_shell.py's check."""
from harness.kernel.firewall import filter_policies


def test_filter_policies_become_chains_made_with_their_policy():
    script, rest = filter_policies(["-P FORWARD DROP", "-A FORWARD -i br0 -j ACCEPT", "-t filter -P INPUT ACCEPT"])
    assert script == ("add table ip filter\n"
                      "add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }\n"
                      "add chain ip filter INPUT { type filter hook input priority 0; policy accept; }\n")
    assert rest == ["-A FORWARD -i br0 -j ACCEPT"]


def test_other_tables_user_chains_and_odd_targets_stay_with_iptables():
    rules = ["-t nat -P POSTROUTING ACCEPT", "-P LAB DROP", "-P FORWARD", "-A FORWARD -j DROP"]
    assert filter_policies(rules) == (None, rules)
