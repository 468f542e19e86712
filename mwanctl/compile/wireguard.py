"""WireGuard interfaces and peers (package `network`) on both ends of every tunnel."""

from __future__ import annotations

from mwanctl.compile.context import Context, of_uplink
from mwanctl.topology import fields
from mwanctl.uci.model import UciSection


class Wireguard:
    package = "network"

    @staticmethod
    def convert(ctx: Context) -> dict[str, list[UciSection]]:
        t = ctx.topology
        out: dict[str, list[UciSection]] = {t.mother.name: []}
        for u in t.uplinks:
            keys, a = ctx.keys[u.name], ctx.addrs(u)
            # The mother reaches the internet through the uplink: it allows everything and
            # gets the default route (at this tunnel's own metric) that mwan3 needs.
            allowed = ["0.0.0.0/0"] + (["::/0"] if a.mother6 else [])
            origin = of_uplink(u)
            tunnel = fields.placeholders(fields.TUNNEL, u.tunnel, "mother", "network")
            out[t.mother.name] += ctx.render(
                "network-mother-tunnel", origin, iface=u.iface, private_key=keys.mother.private,
                addresses=[str(a.mother4)], **{**tunnel, "metric": ctx.metric(u)},
                peer_public_key=keys.uplink.public, allowed_ips=allowed,
                **fields.placeholders(fields.UPLINK, u, "mother", "network"))
            if a.mother6 is not None:
                out[t.mother.name] += ctx.render(
                    "network-mother-tunnel6", origin, iface6=u.iface6, iface=u.iface, address6=str(a.mother6))
            out[u.name] = ctx.render(
                "network-uplink-tunnel", origin, iface=u.iface, private_key=keys.uplink.private,
                addresses=[str(a.uplink4)] + ([str(a.uplink6)] if a.uplink6 else []),
                **fields.placeholders(fields.TUNNEL, u.tunnel, "uplink", "network"),
                description=f"mwanctl mother {t.mother.name} ({t.site})",
                peer_public_key=keys.mother.public,
                allowed_ips=[f"{a.mother4.ip}/32"] + ([f"{a.mother6.ip}/128"] if a.mother6 else []))
        return out
