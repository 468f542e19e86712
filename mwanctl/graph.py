"""The topology as a Mermaid flowchart: routers, tunnels with their addresses, tiers, weights."""

from __future__ import annotations

from mwanctl.compile.context import Context
from mwanctl.compile.mwan3 import policy_members
from mwanctl.topology.model import Topology


def shares(t: Topology) -> dict[str, float]:
    """Share of new flows per member of the default policy when everything is online."""
    try:
        policy = t.policy(t.default_policy)
    except KeyError:
        return {}
    members = policy_members(t, policy)
    if not members:
        return {}
    best = min(m for _, m, _ in members)
    total = sum(w for _, m, w in members if m == best)
    out: dict[str, float] = {}
    for iface, metric, weight in members:
        out[iface] = weight / total if metric == best else 0.0
    return out


def _label(text: str) -> str:
    """Mermaid labels in double quotes: the only character to neutralise is the quote itself."""
    return text.replace('"', "#quot;")


def mermaid(ctx: Context) -> str:
    t = ctx.topology
    share = shares(t)
    lines = ["flowchart LR"]
    lan = f"LAN {t.mother.lan_subnet}" if t.mother.lan_subnet else f"LAN ({t.mother.lan_network})"
    lines.append(f'    lan(["{_label(lan)}"]) --> mother')
    lines.append(f'    mother["{_label(f"{t.mother.name} (mother, mwan3)<br/>{t.mother.host}" if t.mother.name != "mother" else f"mother (mwan3)<br/>{t.mother.host}")}"]')
    lines.append('    internet(("Internet"))')
    for w in t.mother.wans:
        pct = f", {share.get(w.iface, 0):.0%} of new flows" if share else ""
        lines.append(f'    mother -- "{_label(f"own WAN {w.name}<br/>tier {w.tier}, weight {w.weight}{pct}")}" --> internet')
    for u in t.uplinks:
        a = ctx.addrs(u)
        pct = f", {share.get(u.iface, 0):.0%} of new flows" if share else ""
        tunnel = f"{u.iface}: {a.mother4.ip} ⇄ {a.uplink4.ip}"
        if a.mother6 is not None:
            tunnel += f"<br/>{a.mother6.ip} ⇄ {a.uplink6.ip}" if a.uplink6 else ""
        label = f"{tunnel}<br/>tier {u.tier}, weight {u.weight}{pct}"
        node = f"up_{u.name}"
        lines.append(f'    mother == "{_label(label)}" ==> {node}["{_label(f"{u.name}<br/>{u.host}")}"]')
        lines.append(f"    {node} --> internet")
    return "\n".join(lines) + "\n"
