"""The handover tracker's own view of each uplink, as `mwanctl status` shows it.

mwanctl-track writes /var/run/mwanctl-track/<iface>.state once a second (key=value lines); the
status probe `tracker` prints them all, each after a ``== <iface>`` line. Ages are taken against
the mother's uptime at the time of the probe when it is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True, slots=True)
class TrackerView:
    state: str                      # up | down
    since: Optional[float]          # seconds in that state
    last_answer_age: Optional[float]
    loss_pct: Optional[float]       # over the last minute
    rtt_avg_ms: Optional[float]
    rtt_max_ms: Optional[float]
    reason: str                     # why the last state change happened

    def text(self) -> str:
        age = "never" if self.last_answer_age is None else f"{self.last_answer_age:.1f}s ago"
        loss = "" if self.loss_pct is None else f", loss {self.loss_pct:g}%"
        rtt = "" if self.rtt_avg_ms is None else f", rtt {self.rtt_avg_ms:.1f}/{self.rtt_max_ms:.1f} ms"
        return f"tracker {self.state}: answer {age}{loss}{rtt} ({self.reason})"

    def to_json(self) -> dict[str, object]:
        return {"state": self.state, "since": self.since, "last_answer_age": self.last_answer_age,
                "loss_pct": self.loss_pct, "rtt_avg_ms": self.rtt_avg_ms, "rtt_max_ms": self.rtt_max_ms,
                "reason": self.reason}


def _f(v: Optional[str]) -> Optional[float]:
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None


def parse_tracker_probe(text: str, uptime: Optional[float] = None) -> dict[str, TrackerView]:
    """``== <iface>`` blocks of key=value lines -> a view per interface; junk lines are skipped."""
    blocks: dict[str, dict[str, str]] = {}
    cur: Optional[dict[str, str]] = None
    for line in text.splitlines():
        if line.startswith("== "):
            cur = blocks.setdefault(line[3:].strip(), {})
        elif cur is not None and "=" in line:
            k, v = line.split("=", 1)
            cur[k] = v
    out = {}
    for iface, kv in blocks.items():
        if kv.get("state") not in ("up", "down"):
            continue
        now = uptime if uptime is not None else _f(kv.get("now"))
        last, since, sent, got = _f(kv.get("last_answer")), _f(kv.get("since")), _f(kv.get("sent")), _f(kv.get("answered"))
        started = kv.get("reason", "").startswith("tracker started")
        age = None if now is None or last is None or (started and last > now) else round(max(0.0, now - last), 2)
        loss = None if not sent else round(max(0.0, 100 * (1 - (got or 0) / sent)), 1)
        out[iface] = TrackerView(
            state=kv["state"], since=None if now is None or since is None else round(max(0.0, now - since), 1),
            last_answer_age=age, loss_pct=loss,
            rtt_avg_ms=_f(kv.get("rtt_avg_ms")) if got else None, rtt_max_ms=_f(kv.get("rtt_max_ms")) if got else None,
            reason=kv.get("reason", ""))
    return out
