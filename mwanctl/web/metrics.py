"""/metrics: the poller's latest view in the Prometheus text exposition format (version 0.0.4)."""

from __future__ import annotations

from typing import Iterable, Optional

from mwanctl.status import STATES
from mwanctl.web.history import History
from mwanctl.web.poller import Snapshot, key

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**kw: str) -> str:
    return "{" + ",".join(f'{k}="{_esc(str(v))}"' for k, v in kw.items()) + "}"


class _Out:
    def __init__(self) -> None:
        self.families: dict[str, tuple[str, str, list[str]]] = {}

    def add(self, name: str, kind: str, help_: str, labels: dict[str, str], value: Optional[float]) -> None:
        if value is None:
            return
        fam = self.families.setdefault(name, (kind, help_, []))
        fam[2].append(f"{name}{_labels(**labels)} {float(value)!r}")

    def text(self) -> str:
        out = []
        for name, (kind, help_, lines) in self.families.items():
            out += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}", *lines]
        return "\n".join(out) + "\n"


def render(snaps: Iterable[tuple[str, Optional[Snapshot]]], history: History) -> str:
    o = _Out()
    for site, snap in snaps:
        last = history.last_event(site, "deploy")
        if last is not None:
            o.add("mwanctl_last_deploy_success", "gauge", "1 if the last deploy from the dashboard was "
                  "applied and confirmed (or had nothing to do), else 0", {"site": site},
                  1.0 if last.result in ("applied", "unchanged") else 0.0)
            o.add("mwanctl_last_deploy_timestamp_seconds", "gauge", "When the last deploy finished",
                  {"site": site}, last.ts)
            o.add("mwanctl_last_deploy_info", "gauge", "The last deploy's result as a label",
                  {"site": site, "result": last.result}, 1.0)
        if snap is None:
            continue
        o.add("mwanctl_poll_timestamp_seconds", "gauge", "When the poller last had a result", {"site": site}, snap.seen)
        o.add("mwanctl_poll_duration_seconds", "gauge", "How long the last poll took", {"site": site}, snap.duration)
        o.add("mwanctl_site_exit_code", "gauge", "What `mwanctl status` would exit with (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)",
              {"site": site}, snap.doc["exit_code"])
        for router, why in snap.reach.items():
            o.add("mwanctl_router_reachable", "gauge", "1 if the router answered the last poll",
                  {"site": site, "router": router}, 1.0 if why is None else 0.0)
            o.add("mwanctl_router_deploy_pending", "gauge", "1 if the router holds a deploy applied but not "
                  "confirmed (its rollback timer armed), as last read", {"site": site, "router": router},
                  1.0 if router in snap.pending else 0.0)
        for router, (p, read_at) in snap.pending.items():
            o.add("mwanctl_router_deploy_rollback_timestamp_seconds", "gauge", "When the router restores its "
                  "old config by itself unless the pending deploy is confirmed", {"site": site, "router": router},
                  read_at + p.deadline)
        for u in snap.status.uplinks:
            lab = {"site": site, "uplink": key(u), "family": u.family}
            o.add("mwanctl_uplink_up", "gauge", "1 if mwan3 uses the uplink (online, or up without tracking)",
                  lab, 1.0 if u.ok else 0.0)
            for s in STATES:
                o.add("mwanctl_uplink_state", "gauge", "1 for the uplink's current mwan3 state",
                      {**lab, "state": s}, 1.0 if u.state == s else 0.0)
            o.add("mwanctl_uplink_state_seconds", "gauge", "Seconds in the current state", lab, u.since)
            o.add("mwanctl_uplink_tier", "gauge", "Configured tier (mwan3 metric)", lab, u.tier)
            o.add("mwanctl_uplink_weight", "gauge", "Configured weight", lab, u.weight)
            for t in u.targets:
                tl = {**lab, "target": t.ip}
                o.add("mwanctl_target_up", "gauge", "1 if mwan3 sees the tracking target up", tl,
                      1.0 if t.status == "up" else 0.0)
                o.add("mwanctl_target_rtt_milliseconds", "gauge", "Tracking target round-trip time", tl, t.latency_ms)
                o.add("mwanctl_target_loss_ratio", "gauge", "Tracking target packet loss (0..1)", tl,
                      None if t.loss_pct is None else t.loss_pct / 100)
            if u.wg is not None:
                o.add("mwanctl_uplink_handshake_age_seconds", "gauge", "Age of the tunnel's last WireGuard handshake",
                      lab, u.wg.handshake_age)
                o.add("mwanctl_uplink_receive_bytes_total", "counter", "Bytes the mother received on the tunnel",
                      lab, u.wg.rx_bytes)
                o.add("mwanctl_uplink_transmit_bytes_total", "counter", "Bytes the mother sent on the tunnel",
                      lab, u.wg.tx_bytes)
            for policy, share in u.shares.items():
                o.add("mwanctl_uplink_share_ratio", "gauge", "Share of new flows of a policy the uplink gets (0..1)",
                      {**lab, "policy": policy}, share)
    return o.text()
