"""The renderers: the ``status`` table (rich) and the documented JSON (docs/status-json.md), both
read only from the model, plus the one-line summary both carry.
"""

from __future__ import annotations

from typing import Any

from mwanctl.dnsview import DnsView
from mwanctl.status.model import CRITICAL, OK, WARNING, SiteStatus, Target, UplinkRow, exit_code
from mwanctl.status.text import format_bytes, format_duration, handshake_text, row_label, state_text

SCHEMA = "mwanctl.status/2"


# --------------------------------------------------------------------------- summary


def _describe(row: UplinkRow) -> str:
    return f"{row_label(row)} {state_text(row)}"


def _family_count(site: SiteStatus, family: str) -> tuple[int, int]:
    rows = [u for u in site.uplinks if u.family == family]
    return sum(u.ok for u in rows), len(rows)


def summary_line(site: SiteStatus, dash: str = "—") -> str:
    """'2/3 uplinks online — lte offline for 4m12s' (or why nothing is known); with IPv6 interfaces
    'IPv4 2/2, IPv6 1/2 uplinks online — dsl IPv6 offline for 40s'."""
    if not site.reachable:
        return f"{site.router} unreachable: {site.error}"
    if site.error is not None:
        return f"status unknown: {site.error}"
    if len(site.families) > 1:
        head = ", ".join("{} {}/{}".format(f.replace("ipv", "IPv"), *_family_count(site, f))
                         for f in site.families) + " uplinks online"
    else:
        head = f"{len(site.online)}/{len(site.uplinks)} uplinks online"
    bad = [_describe(u) for u in site.uplinks if not u.ok]
    if bad:
        return f"{head} {dash} {', '.join(bad)}"
    errors = sum(p.severity == "error" for p in site.problems)
    return f"{head} {dash} {errors} problem(s)" if errors else head


# --------------------------------------------------------------------------- JSON


def to_json(site: SiteStatus) -> dict[str, Any]:
    """A stable, documented dict (docs/status-json.md); bump SCHEMA on any incompatible change.

    ``{"schema": "mwanctl.status/2", "router": str|null, "reachable": bool, "error": str|null,
    "router_uptime": number|null, "exit_code": 0|1|2|3,
    "summary": {"online": int, "total": int, "families": {family: {"online": int, "total": int}},
                "text": str},
    "uplinks": [{"name", "label", "iface", "kind": "tunnel"|"wan", "family": "ipv4"|"ipv6",
                 "router": str|null, "tier", "weight", "state": one of STATES, "since": int|null,
                 "since_estimated": bool, "rounds": null | {"done": int, "needed": int},
                 "tracking": str, "up": bool|null,
                 "targets": [{"ip", "status", "latency_ms": int|null, "loss_pct": int|null}],
                 "wireguard": null | {"iface", "peer_public_key", "endpoint", "latest_handshake",
                                      "handshake_age", "rx_bytes", "tx_bytes"},
                 "shares": {policy: fraction 0..1},
                 "wan": null | {"up": bool|null, "address": str|null, "error": str|null},
                 "tracker": null | {"state": "up"|"down", "since", "last_answer_age", "loss_pct",
                                    "rtt_avg_ms", "rtt_max_ms", "reason"}}],
    "policies": [{"name", "last_resort": bool, "members": [{"iface", "metric", "weight", "share"}]}],
    "problems": [{"severity": "error"|"warning", "kind", "uplink": str|null, "message"}],
    "dns" (only with `dns:`): {"noresolv": bool, "upstreams": [{"server", "answered": bool,
                                  "ms": int|null, "rule": str|null, "policy": str|null}]}}``
    """
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "router": site.router,
        "reachable": site.reachable,
        "error": site.error,
        "router_uptime": site.router_uptime,
        "exit_code": exit_code(site),
        "summary": {"online": len(site.online), "total": len(site.uplinks),
                    "families": {f: dict(zip(("online", "total"), _family_count(site, f), strict=True))
                                 for f in site.families},
                    "text": summary_line(site)},
        "uplinks": [_uplink_json(u) for u in site.uplinks],
        "policies": [{"name": p.name, "last_resort": p.last_resort,
                      "members": [{"iface": m.iface, "metric": m.metric, "weight": m.weight, "share": m.share}
                                  for m in p.members]} for p in site.policies],
        "problems": [{"severity": p.severity, "kind": p.kind, "uplink": p.uplink, "message": p.message}
                     for p in site.problems],
    }
    if site.dns is not None:       # only with `dns:` in the topology
        doc["dns"] = {"noresolv": site.dns.noresolv,
                      "upstreams": [{"server": u.server, "answered": u.answered, "ms": u.ms, "rule": u.rule,
                                     "policy": u.policy} for u in site.dns.upstreams]}
    return doc


def dns_line(view: DnsView) -> str:
    """``DNS: 1.1.1.1 answers (20 ms), 9.9.9.9 no answer`` (dnsmasq's upstreams, asked from the mother)."""
    parts = [f"{u.server} answers ({u.ms} ms)" if u.answered else f"{u.server} no answer" for u in view.upstreams]
    return "DNS: " + (", ".join(parts) if parts else "dnsmasq has no upstream server")


def _uplink_json(u: UplinkRow) -> dict[str, Any]:
    wg = None if u.wg is None else {
        "iface": u.wg.iface, "peer_public_key": u.wg.peer_public_key, "endpoint": u.wg.endpoint,
        "latest_handshake": u.wg.latest_handshake, "handshake_age": u.wg.handshake_age,
        "rx_bytes": u.wg.rx_bytes, "tx_bytes": u.wg.tx_bytes,
    }
    wan = None if u.wan is None else {"up": u.wan.up, "address": u.wan.address, "error": u.wan.error}
    return {
        "name": u.name, "label": row_label(u), "iface": u.iface, "kind": u.kind, "family": u.family,
        "router": u.router, "tier": u.tier, "weight": u.weight, "state": u.state, "since": u.since,
        "since_estimated": u.since_estimated,
        "rounds": None if u.rounds is None else {"done": u.rounds[0], "needed": u.rounds[1]},
        "tracking": u.tracking, "up": u.up,
        "targets": [{"ip": t.ip, "status": t.status, "latency_ms": t.latency_ms, "loss_pct": t.loss_pct}
                    for t in u.targets],
        "wireguard": wg, "shares": dict(u.shares), "wan": wan,
        "tracker": u.tracker.to_json() if u.tracker is not None else None,
    }


# --------------------------------------------------------------------------- table (rich)

_STATE_STYLE = {"online": "green", "connecting": "yellow", "disconnecting": "yellow",
                "not tracking": "cyan", "offline": "bold red", "missing": "bold red",
                "disabled": "magenta", "unknown": "red"}


def _target_text(t: Target) -> str:
    measured = "" if t.latency_ms is None else f" {t.latency_ms}ms {t.loss_pct}%"
    return f"{t.ip} {t.status}{measured}"


def _share_text(row: UplinkRow) -> str:
    if not row.shares:
        return "-"
    if len(row.shares) == 1:
        return f"{next(iter(row.shares.values())):.0%}"
    return "\n".join(f"{p} {s:.0%}" for p, s in row.shares.items())


def _wan_text(row: UplinkRow) -> str:
    if row.wan is None:
        return "-"
    if row.wan.error:
        return "?"
    state = {True: "up", False: "down", None: "?"}[row.wan.up]
    return f"{state} {row.wan.address}" if row.wan.address else state


def _table(site: SiteStatus) -> Any:
    from rich.table import Table
    from rich.text import Text

    with_wan = any(u.wan is not None for u in site.uplinks)
    table = Table(title=f"{site.router} uplinks", title_justify="left")
    for col in ("Uplink", "State", "For", "Tier", "Weight", "Share", "Tracking", "Handshake", "RX / TX",
                "Endpoint") + (("Own WAN",) if with_wan else ()):
        table.add_column(col, justify="right" if col in ("Tier", "Weight", "Share", "For") else "left")
    for u in site.uplinks:
        hs = handshake_text(u)
        stale = any(p.kind == "stale-handshake" and p.uplink == u.name for p in site.problems)
        cells: list[Any] = [
            row_label(u), Text(u.state, style=_STATE_STYLE.get(u.state, "")),
            ("~" if u.since_estimated else "") + format_duration(u.since) if u.since is not None else "-",
            str(u.tier), str(u.weight),
            _share_text(u), "\n".join([*map(_target_text, u.targets)] + ([u.tracker.text()] if u.tracker else []))
            or u.tracking,
            Text(hs, style="bold red" if stale else ""),
            f"{format_bytes(u.wg.rx_bytes)} / {format_bytes(u.wg.tx_bytes)}" if u.wg and u.wg.rx_bytes is not None
            else "-",
            (u.wg.endpoint if u.wg else None) or "-",
        ]
        if with_wan:
            cells.append(Text(_wan_text(u), style="red" if u.wan and u.wan.up is False else ""))
        table.add_row(*cells)
    return table


def render_table(site: SiteStatus, console: Any) -> None:
    """Print the status to a rich Console: table, problems, summary. Readable without colour too."""
    from rich.text import Text

    utf = (getattr(console, "encoding", "utf-8") or "").lower().startswith("utf")
    dash = "—" if utf else "-"
    if site.reachable and site.error is None:
        console.print(_table(site))
        if site.dns is not None:
            console.print(Text(dns_line(site.dns)))
    for p in site.problems:
        style = "red" if p.severity == "error" else "yellow"
        console.print(Text(f"{p.severity}: {p.message}", style=style))
    code = exit_code(site)
    style = {OK: "bold green", WARNING: "bold yellow", CRITICAL: "bold red"}.get(code, "bold magenta")
    console.print(Text(summary_line(site, dash), style=style))
