"""A lab as a picture: ``topology(lab, "mermaid"|"dot")`` draws the namespaces and their links."""
from __future__ import annotations

from harness.lab.file import validate
from harness.lab.model import Lab, Link
from harness.lab.script import oneline

FORMATS = ("mermaid", "dot")


# ---------------------------------------------------------------- topology

def _interfaces(lab: Lab) -> dict[str, list[tuple[str, Link, bool]]]:
    """node -> [(name, declaring Link, is_peer)] for every interface living in that node."""
    where: dict[str, list] = {node.name: [] for node in lab.nodes}
    for node in lab.nodes:
        for link in node.links:
            where[node.name].append((link.name, link, False))
            if link.peer is not None:
                where[link.peer.node or node.name].append((link.peer.name, link, True))
    return where


def _detail(link: Link, is_peer: bool) -> list[str]:
    if is_peer:
        return ["veth", *link.peer.addresses]
    kind = {"macvlan": f"macvlan {link.mode or 'bridge'}", "ipvlan": f"ipvlan {link.mode or 'l2'}",
            "vlan": f"vlan {link.vni}", "vrf": f"vrf table {link.table or 10}"}.get(link.kind, link.kind)
    if link.kind == "vxlan":
        kind = f"vxlan VNI {link.vni} port {link.port_udp or 8472}" + (f" remote {link.remote}" if link.remote else "")
    if link.kind == "ipip":
        kind = "ipip" + "".join(f" {word} {value}" for word, value in (("local", link.local), ("remote", link.remote))
                                if value)
    return [kind, *link.addresses]


def _graph(lab: Lab):
    """Clusters [(node, [(id, label lines)])] and edges [(id, id, label)], in lab order."""
    validate(lab)
    where = _interfaces(lab)
    ids = {}
    clusters = []
    for n, node in enumerate(lab.nodes):
        members = []
        for i, (name, link, is_peer) in enumerate(where[node.name]):
            ids[node.name, name] = f"n{n}_{i}"
            members.append((ids[node.name, name], [name, *_detail(link, is_peer)]))
        clusters.append((node.name, members))
    kinds = {(node.name, link.name): link.kind for node in lab.nodes for link in node.links}
    member = lambda node, master: "port" if kinds.get((node, master)) == "bridge" else "vrf member"  # noqa: E731
    edges = []
    for node in lab.nodes:
        for link in node.links:
            me = ids[node.name, link.name]
            if link.peer is not None:
                peer_node = link.peer.node or node.name
                edges.append((me, ids[peer_node, link.peer.name], "veth pair"))
                if link.peer.master:
                    edges.append((ids[peer_node, link.peer.name], ids[peer_node, link.peer.master],
                                  member(peer_node, link.peer.master)))
            if link.master:
                edges.append((me, ids[node.name, link.master], member(node.name, link.master)))
            if link.parent:
                parent_node = node.name if link.kind == "vxlan" else (link.parent_node or node.name)
                edges.append((me, ids[parent_node, link.parent], f"{link.kind} on"))
    return clusters, edges


_MERMAID_ESCAPES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "`": "#96;"}


def _mermaid_text(text: str) -> str:
    return "".join(_MERMAID_ESCAPES.get(c, c) for c in oneline(text))


def _dot_text(*lines: str) -> str:
    """A DOT quoted string; several lines are joined with DOT's centred line break."""
    return '"' + "\\n".join(oneline(t).replace("\\", "\\\\").replace('"', '\\"').replace("&", "&amp;")
                             for t in lines) + '"'


def topology(lab: Lab, fmt: str = "mermaid") -> str:
    """The lab's namespaces (boxes) and interfaces (nodes), as Mermaid or Graphviz DOT."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown topology format {fmt!r} (formats: {', '.join(FORMATS)})")
    clusters, edges = _graph(lab)
    if fmt == "mermaid":
        out = ["flowchart LR", f"  %% netconform lab {_mermaid_text(lab.name)}"]
        for n, (name, members) in enumerate(clusters):
            out.append(f'  subgraph ns{n}["{_mermaid_text("netns " + name)}"]')
            out += [f'    {mid}["{"<br/>".join(map(_mermaid_text, label))}"]' for mid, label in members]
            if not members:
                out.append(f'    empty{n}["(no interfaces)"]')
            out.append("  end")
        out += [f"  {a} ---|{label}| {b}" for a, b, label in edges]
    else:
        out = [f"graph {_dot_text(lab.name)} {{", "  rankdir=LR;", "  node [shape=box, style=rounded];"]
        for n, (name, members) in enumerate(clusters):
            out += [f"  subgraph cluster_{n} {{", f"    label={_dot_text('netns ' + name)};"]
            out += [f"    {mid} [label={_dot_text(*label)}];" for mid, label in members]
            if not members:
                out.append(f"    empty{n} [label=\"(no interfaces)\", shape=plaintext];")
            out.append("  }")
        out += [f"  {a} -- {b} [label={_dot_text(label)}];" for a, b, label in edges]
        out.append("}")
    return "\n".join(out) + "\n"
