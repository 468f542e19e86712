"""Tracking profiles, what they mean in seconds, and how likely they are to flap.

The arithmetic follows mwan3track's main loop (mwan3 2.12.2, ``net/mwan3/files/usr/sbin/mwan3track``):

* a round probes the targets **one after another** (``ping -c count -W timeout``) until
  ``reliability`` of them answered; the others are skipped. A round in which every target is lost
  therefore lasts N lost probes, a good round about one round trip;
* after the round the loop sleeps: ``failure_interval`` after a failed round while the score is
  still >= ``up`` (disconnecting, and the round that declares offline), ``interval`` after further
  failed rounds once offline (``failure_interval`` with ``keep_failure_interval``),
  ``recovery_interval`` after a good round while connecting (and the one that declares online),
  ``interval`` while stably online;
* ``down`` consecutive failed rounds from online declare offline; from offline (score 0) ``up``
  consecutive good rounds declare online; one good round while disconnecting resets the count,
  one failed round while connecting starts it over.

A bound printed by ``validate`` must hold whatever phase of that loop the outage starts or ends
in, so the worst case includes the round already in flight (a lost probe of a failing round runs
to its timeout even if the link came back a moment after it was sent; recorded on real mwan3:
``balanced`` back after 10.98 s) and the sleep after it. ``ROUND_OVERHEAD`` and ``EVENT_DELAY``
cover what the shell itself costs, measured on the lab's real mwan3 (tests/vectors/failover).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the topology package imports this module: no import cycle at run time
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
# The IPv6 aliases (mw_<uplink>6) and IPv6 WANs track these unless `targets6` says otherwise:
# the same two operators as DEFAULT_TARGETS (Cloudflare, Quad9), over IPv6.
DEFAULT_TARGETS6 = ("2606:4700:4700::1111", "2620:fe::fe")

# Seconds per round beyond the probes and the sleep: forks, status files, and the synchronous
# `hotplug-call` of the connecting/disconnecting events (lab maximum 0.23 s, recorded vectors).
ROUND_OVERHEAD = 0.3
# From mwan3track declaring a state to mwan3's hotplug having rebuilt the policy (lab: 0.15-0.33 s).
EVENT_DELAY = 0.5

# The flapping estimate assumes this independent packet loss (a lossy LTE link) and warns when
# the expected number of false failovers at that loss exceeds FLAP_LIMIT_PER_DAY.
FLAP_LOSS = 0.05
FLAP_LIMIT_PER_DAY = 1.0


def family_tracking(t: Tracking, family: str) -> Tracking:
    """The settings of one mwan3 interface: IPv4 ones track `targets`, IPv6 ones `targets6`."""
    if family != "ipv6":
        return t
    return replace(t, targets=t.targets6, reliability=max(1, min(t.reliability, len(t.targets6))))


@dataclass(frozen=True)
class Timing:
    """Seconds from an outage's start (end) until mwan3 moves traffic, best and worst case."""

    offline_min: float
    offline_max: float
    online_min: float
    online_max: float

    def describe(self) -> str:
        return (f"outage noticed within {_fmt(self.offline_min)}-{_fmt(self.offline_max)}, "
                f"recovery within {_fmt(self.online_min)}-{_fmt(self.online_max)}")


def lost_probe_seconds(t: Tracking) -> tuple[float, float]:
    """How long one target's probe takes when every packet is lost: (shortest, longest).

    ping sends ``count`` packets a second apart and then waits ``timeout`` (busybox and iputils);
    httping/arping/nping may wait ``timeout`` per packet, so the longest assumes that.
    """
    count = max(1, t.count)
    shortest = t.timeout + (count - 1) if t.method == "ping" else t.timeout
    return float(shortest), float(count * t.timeout + (count - 1))


def timing(t: Tracking, round_overhead: float = ROUND_OVERHEAD, event_delay: float = EVENT_DELAY) -> Timing:
    """Failover and recovery bounds over every phase of mwan3track's loop (module docstring).

    With N targets, P = a lost probe (shortest/longest), F = N·P a round where all are lost:

    offline_min = (down−1)·F_min + (N−reliability+1)·P_min + (down−1)·failure_interval
                  (the outage starts as a round starts, or after some targets of it answered)
    offline_max = A + interval + down·F_max + (down−1)·failure_interval + overheads
                  A = the rest of a round in flight that still succeeds (a later packet of a
                  multi-packet probe), P_max when count > 1, else 0
    online_min  = (up−1)·(recovery_interval + G)                    (back just before a round)
    online_max  = P_max + S + (up−1)·recovery_interval + up·G + overheads
                  G = count−1: a good round still sends all its packets a second apart
                  (back just after the last target's probe of a failing round was sent: it is
                  lost, the round fails, S = the sleep after it, then `up` good rounds)
    """
    if t.tracker:
        return tracker_timing(t)
    n = max(1, len(t.targets))
    p_min, p_max = lost_probe_seconds(t)
    inflight = p_max if t.count > 1 else 0.0
    off_rounds = (t.down - 1) * t.failure_interval
    # The first failing round may have had targets answer just before the outage: it still needs
    # N - reliability + 1 lost probes after it; every later round loses all N.
    first = max(1, n - min(max(1, t.reliability), n) + 1)
    offline_min = ((t.down - 1) * n + first) * p_min + off_rounds
    offline_max = (inflight + t.interval + t.down * n * p_max + off_rounds
                   + (t.down + 1) * round_overhead + event_delay)
    sleep_offline = t.failure_interval if t.keep_failure_interval else max(t.interval, t.failure_interval)
    on_rounds = (t.up - 1) * t.recovery_interval
    good = max(1, t.count) - 1        # an answered probe still sends all `count` packets, 1 s apart
    online_min = float(on_rounds + (t.up - 1) * good)
    online_max = p_max + sleep_offline + on_rounds + t.up * good + (t.up + 1) * round_overhead + event_delay
    return Timing(_round(offline_min), _round(offline_max), _round(online_min), _round(online_max))


# --------------------------------------------------------------------------- mwanctl-track

# The tracker decides on a 0.1 s clock; after its event mwan3 rebuilds the policy (EVENT_DELAY).
TRACKER_CLOCK = 0.1


def tracker_timing(t: Tracking, event_delay: float = EVENT_DELAY) -> Timing:
    """Handover and recovery bounds of mwanctl-track (profile `instant`).

    handover = the last answer came at most one probe spacing before the cut; the decision
               follows `window` after it, on the next clock tick; then mwan3 rebuilds once:
               [window - spacing, window + clock + event_delay]
    recovery = the first answer within one probe interval of the restore, then `stable` without
               a gap, the next tick, one rebuild: [stable, interval + stable + clock + event_delay]
    spacing = probe interval / number of targets (they are probed in parallel).
    """
    iv, win, stab = t.probe_interval_ms / 1000, t.window_ms / 1000, t.stable_ms / 1000
    n = max(1, len(t.targets))
    return Timing(_round(max(0.0, win - iv / n)), _round(win + TRACKER_CLOCK + event_delay),
                  _round(stab), _round(iv + stab + TRACKER_CLOCK + event_delay))


def tracker_false_failovers_per_hour(t: Tracking, loss: float) -> float:
    """Expected false failovers per hour of mwanctl-track on a working link where each probe is
    lost with probability ``loss``: a silence longer than `window` needs every probe of every
    target in it lost, about n·window/interval probes in a row, and one can start at each probe."""
    n = max(1, len(t.targets))
    iv = t.probe_interval_ms / 1000
    k = n * max(1, int(t.window_ms / t.probe_interval_ms))
    return 3600.0 * n / iv * (1 - loss) * loss ** k


# --------------------------------------------------------------------------- flapping


def round_failure_probability(t: Tracking, loss: float) -> float:
    """P(a round fails) on a working link with independent packet loss ``loss``.

    A target fails when all ``count`` packets are lost; the round fails when fewer than
    ``reliability`` of the N targets answer (for reliability 1: every target lost, loss^(count·N)).
    """
    n = max(1, len(t.targets))
    q = loss ** max(1, t.count)                # one target lost
    need = min(max(1, t.reliability), n)
    # P(fewer than `need` of n targets answer) = sum_{k < need} C(n,k) (1-q)^k q^(n-k)
    return sum(math.comb(n, k) * (1 - q) ** k * q ** (n - k) for k in range(need))


def false_failovers_per_hour(t: Tracking, loss: float) -> float:
    """Expected false failovers per hour of a working link at packet loss ``loss``.

    A false failover is a run of ``down`` failed rounds starting from a good one; rounds come
    about every ``interval`` seconds while online (plus the time the lost probes take).
    """
    if not t.targets:
        return 0.0
    p = round_failure_probability(t, loss)
    n = len(t.targets)
    _, p_max = lost_probe_seconds(t)
    q_target = loss ** max(1, t.count)
    # Expected round length while online: the sleep plus the lost probes before the answering one.
    period = max(t.interval, 1) + p_max * sum(q_target ** k for k in range(1, n + 1))
    return 3600.0 / period * (1 - p) * p ** t.down


def advice(t: Tracking, family: str = "ipv4") -> list[str]:
    """Settings that will flap or fail silently; each message says what to change."""
    out: list[str] = []
    targets = "targets6" if family == "ipv6" else "targets"
    if not t.targets:
        out.append(f"no tracking targets: WireGuard has no carrier, so mwan3 will never notice that "
                   f"this uplink's internet is down; add `{targets}`")
        return out
    if len(t.targets) == 1:
        out.append("only one tracking target: if it blocks ICMP or goes down, mwan3 takes the uplink "
                   "offline although it works; add a second target"
                   + (" to `targets6`" if family == "ipv6" else ""))
    if t.tracker:
        per_day = 24 * tracker_false_failovers_per_hour(t, FLAP_LOSS)
        if per_day > FLAP_LIMIT_PER_DAY:
            out.append(f"flaps on a lossy link: at {FLAP_LOSS:.0%} probe loss mwanctl-track would see "
                       f"{t.window_ms} ms without an answer about {_rate(per_day)} times a day; raise "
                       "`window_ms` or add targets")
        per_day = 0.0
    else:
        per_day = 24 * false_failovers_per_hour(t, FLAP_LOSS)
    if per_day > FLAP_LIMIT_PER_DAY:
        out.append(f"flaps on a lossy link: at {FLAP_LOSS:.0%} packet loss a tracking round fails "
                   f"(every target lost) with probability {round_failure_probability(t, FLAP_LOSS):.2g}, and `down {t.down}` such "
                   f"rounds in a row take the uplink offline: about {_rate(per_day)} false failovers a "
                   f"day; add targets or raise `down`")
    if t.timeout >= t.interval * 4 and t.interval > 0:
        out.append("`timeout` is much longer than `interval`: rounds take longer than the interval "
                   "suggests; see the computed times")
    if t.method == "arping":
        out.append("`arping` only works on the local link; through a tunnel it cannot reach an "
                   "internet target; use `ping`")
    if t.method == "nslookup" or t.method.startswith("nping-"):
        out.append(f"`{t.method}` ignores `timeout`: the computed failover times assume a lost probe "
                   "takes `timeout` seconds and may be too short")
    return out


def _rate(per_day: float) -> str:
    return f"{per_day:.0f}" if per_day >= 10 else f"{per_day:.1f}"


def _round(x: float) -> float:
    return round(x, 2)


def _fmt(seconds: float) -> str:
    return f"{seconds:g} s"
