"""Firewall zones, forwardings and the WireGuard port rule (package `firewall`)."""

from __future__ import annotations

from mwanctl.compile.context import MWANCTL, Context
from mwanctl.topology import fields
from mwanctl.topology.model import PREFIX
from mwanctl.uci.model import UciSection

ZONE = PREFIX + "tun"  # <= 11 characters: fw3 rejects longer zone names


class Firewall:
    package = "firewall"

    @staticmethod
    def convert(ctx: Context) -> dict[str, list[UciSection]]:
        t = ctx.topology
        nets = []
        for u in t.uplinks:
            nets.append(u.iface)
            if u.ipv6:
                nets.append(u.iface6)
        out = {t.mother.name: ctx.render(
            "firewall-mother", MWANCTL, zone=ZONE, networks=nets, masq6=any(u.ipv6 for u in t.uplinks),
            **fields.placeholders(fields.LAN, t.mother, "mother", "firewall"))}
        for u in t.uplinks:
            out[u.name] = ctx.render(
                "firewall-uplink", MWANCTL, zone=ZONE, iface=u.iface, uplink=u.name,
                **fields.placeholders(fields.UPLINK, u, "uplink", "firewall"),
                **fields.placeholders(fields.TUNNEL, u.tunnel, "uplink", "firewall"))
        return out
