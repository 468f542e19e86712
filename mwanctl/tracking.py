"""Tracking profiles and what they mean in seconds.

mwan3track probes the targets one after another each round; ``down`` failed rounds take an
interface offline, ``up`` good rounds bring it back (see pitfalls "Failover timing"). The
numbers below are the worst case of that arithmetic, shown to users before they deploy.
"""

from __future__ import annotations

from dataclasses import dataclass

from mwanctl.topology.model import Tracking

# Named profiles. "fast" is the setting measured in the lab (offline after 5.6 s, back after
# 1.65 s); "conservative" is mwan3's own code default; "balanced" sits between.
PROFILES: dict[str, dict[str, int]] = {
    "fast": dict(interval=1, failure_interval=1, recovery_interval=1, timeout=1, count=1, down=2, up=2),
    "balanced": dict(interval=5, failure_interval=2, recovery_interval=2, timeout=2, count=1, down=3, up=3),
    "conservative": dict(interval=10, failure_interval=10, recovery_interval=10, timeout=4, count=1, down=5, up=5),
}
# `instant`: mwanctl's own tracker (mwanctl/remote/tracker/mwanctl-track) owns the uplink; mwan3track
# keeps the `fast` numbers as the fallback should the tracker stop.
PROFILES["instant"] = dict(PROFILES["fast"])
TRACKER_PROFILE = "instant"
DEFAULT_PROFILE = "balanced"
DEFAULT_TARGETS = ("1.1.1.1", "9.9.9.9")
METHODS = ("ping", "arping", "httping", "nslookup")  # plus nping-<mode>


@dataclass(frozen=True)
class Timing:
    """Seconds until mwan3 acts, best and worst case."""

    offline_min: float
    offline_max: float
    online_min: float
    online_max: float

    def describe(self) -> str:
        return (f"outage noticed within {_fmt(self.offline_min)}-{_fmt(self.offline_max)}, "
                f"recovery within {_fmt(self.online_min)}-{_fmt(self.online_max)}")


def timing(t: Tracking) -> Timing:
    """Detection times, computed the way mwan3track counts.

    offline = U(0, interval) + down * (N * timeout * count) + (down - 1) * failure_interval
    online  = U(0, interval) + (up - 1) * recovery_interval
    N is the number of targets probed in a failing round (all of them: none answers).
    """
    if t.tracker:
        return tracker_timing(t)
    n = max(1, len(t.targets))
    probe = n * t.timeout * max(1, t.count)
    off_base = t.down * probe + (t.down - 1) * t.failure_interval
    on_base = (t.up - 1) * t.recovery_interval
    return Timing(off_base, off_base + t.interval, on_base, on_base + t.interval)


# What the tracker's bounds are made of (seconds): it decides on a 0.1 s clock; mwan3's policy
# rebuild after the event takes 0.07-0.13 s on real mwan3 2.12.2 plus its 0.1-0.2 s without members
# (tests/vectors/mwan3/failover): 0.3 s covers both.
TRACKER_CLOCK = 0.1
MWAN3_REBUILD = 0.3


def tracker_timing(t: Tracking) -> Timing:
    """Handover and recovery bounds of mwanctl-track (profile `instant`).

    handover = the last answer came at most one probe spacing before the cut, the decision
               follows `window` after it on the next clock tick, then mwan3 rebuilds once:
               [window - spacing, window + clock + rebuild]
    recovery = the first answer within one probe interval of the restore, then `stable` without
               a gap, the next tick, one rebuild: [stable, interval + stable + clock + rebuild]
    spacing = probe interval / number of IPv4 targets (they are probed in parallel).
    """
    iv, win, stab = t.probe_interval_ms / 1000, t.window_ms / 1000, t.stable_ms / 1000
    n = max(1, sum(1 for x in t.targets if ":" not in x))
    return Timing(round(max(0.0, win - iv / n), 2), round(win + TRACKER_CLOCK + MWAN3_REBUILD, 2),
                  round(stab, 2), round(iv + stab + TRACKER_CLOCK + MWAN3_REBUILD, 2))


def advice(t: Tracking) -> list[str]:
    """Settings that will flap or fail silently; each message says what to change."""
    out: list[str] = []
    if not t.targets:
        out.append("no tracking targets: WireGuard has no carrier, so mwan3 will never notice that "
                   "this uplink's internet is down; add `targets`")
        return out
    if len(t.targets) == 1:
        out.append("only one tracking target: if it blocks ICMP or goes down, mwan3 takes the uplink "
                   "offline although it works; add a second target")
    if t.down < 2 or t.up < 2:
        out.append("`down`/`up` below 2: one lost probe changes the state, which flaps on lossy "
                   "links (LTE); use 2 or more")
    if t.timeout >= t.interval * 4 and t.interval > 0:
        out.append("`timeout` is much longer than `interval`: rounds take longer than the interval "
                   "suggests; see the computed times")
    if t.method == "arping":
        out.append("`arping` only works on the local link; through a tunnel it cannot reach an "
                   "internet target; use `ping`")
    return out


def _fmt(seconds: float) -> str:
    return f"{seconds:g} s"
