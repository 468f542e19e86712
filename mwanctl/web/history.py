"""Dashboard history in SQLite: per-uplink samples and a timeline of events, bounded in size.

Samples are one row per uplink per poll; ``prune`` drops samples older than ``sample_hours``
and events older than ``event_days`` (and keeps at most ``max_events`` per site), so the file
stays bounded whatever the uptime. WAL mode: the poller threads write while pages read.

Charts read at most a few hundred rows per uplink whatever the window: each sample is also
added into per-bucket sums (``rollups``, one row per 15 s, 90 s and 6 min bucket), and a window
of an hour or more is drawn from those instead of from every sample in it (24 h at a 5 s interval
is 17,280 samples per uplink, a 6 min rollup 240 rows).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
  ts REAL NOT NULL, site TEXT NOT NULL, uplink TEXT NOT NULL, state TEXT NOT NULL,
  rtt_ms REAL, loss_pct REAL, rx_rate REAL, tx_rate REAL, handshake_age INTEGER, share REAL);
CREATE INDEX IF NOT EXISTS samples_by_uplink ON samples (site, uplink, ts);
CREATE INDEX IF NOT EXISTS samples_by_ts ON samples (ts);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, site TEXT NOT NULL, kind TEXT NOT NULL,
  subject TEXT NOT NULL, result TEXT NOT NULL, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_site ON events (site, ts);
CREATE INDEX IF NOT EXISTS events_by_site_id ON events (site, id);
CREATE TABLE IF NOT EXISTS rollups (
  site TEXT NOT NULL, uplink TEXT NOT NULL, width INTEGER NOT NULL, bucket INTEGER NOT NULL,
  ts REAL NOT NULL, rtt_sum REAL NOT NULL, rtt_n INTEGER NOT NULL, loss_max REAL,
  rx_sum REAL NOT NULL, rx_n INTEGER NOT NULL, tx_sum REAL NOT NULL, tx_n INTEGER NOT NULL,
  PRIMARY KEY (site, uplink, width, bucket)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollups_by_ts ON rollups (ts);
CREATE TABLE IF NOT EXISTS last_state (
  site TEXT NOT NULL, subject TEXT NOT NULL, state TEXT NOT NULL, since REAL NOT NULL,
  PRIMARY KEY (site, subject));
"""
ROLLUP_WIDTHS = (15, 90, 360)      # seconds: 1 h, 6 h and 24 h in 240 buckets each
_ROLLUP_MERGE = ("ON CONFLICT (site, uplink, width, bucket) DO UPDATE SET ts = min(ts, excluded.ts), "
                 "rtt_sum = rtt_sum + excluded.rtt_sum, rtt_n = rtt_n + excluded.rtt_n, "
                 "loss_max = coalesce(max(loss_max, excluded.loss_max), loss_max, excluded.loss_max), "
                 "rx_sum = rx_sum + excluded.rx_sum, rx_n = rx_n + excluded.rx_n, "
                 "tx_sum = tx_sum + excluded.tx_sum, tx_n = tx_n + excluded.tx_n")
# every sample already in the file, summed per bucket (a file from before rollups existed)
_ROLLUP_BACKFILL = ("INSERT INTO rollups SELECT site, uplink, :w, CAST(ts / :w AS INTEGER), MIN(ts), "
                    "TOTAL(rtt_ms), COUNT(rtt_ms), MAX(loss_pct), TOTAL(rx_rate), COUNT(rx_rate), "
                    "TOTAL(tx_rate), COUNT(tx_rate) FROM samples WHERE true "
                    "GROUP BY site, uplink, CAST(ts / :w AS INTEGER) " + _ROLLUP_MERGE)


# one chart point: (ts, rtt_ms, loss_pct, rx_rate, tx_rate), None where nothing was measured
SeriesRow = tuple[float, Optional[float], Optional[float], Optional[float], Optional[float]]


@dataclass(frozen=True)
class Sample:
    uplink: str
    state: str
    rtt_ms: Optional[float]
    loss_pct: Optional[float]
    rx_rate: Optional[float]
    tx_rate: Optional[float]
    handshake_age: Optional[int]
    share: Optional[float]


@dataclass(frozen=True)
class Event:
    id: int
    ts: float
    site: str
    kind: str        # state | reachability | deploy | confirm | rollback | rotate
    subject: str     # uplink or router name, or the site for deploys
    result: str      # the new state, or the action's outcome
    message: str


@dataclass(frozen=True)
class Retention:
    sample_hours: float = 24.0
    event_days: float = 30.0
    max_events: int = 5000      # per site


def _rollup_row(site: str, ts: float, s: Sample, width: int) -> tuple[object, ...]:
    def part(v: Optional[float]) -> tuple[float, int]:
        return (0.0, 0) if v is None else (v, 1)
    return (site, s.uplink, width, int(ts // width), ts, *part(s.rtt_ms), s.loss_pct, *part(s.rx_rate),
            *part(s.tx_rate))


class History:
    """One SQLite file shared by every site's poller and the web handlers."""

    def __init__(self, path: Path, retention: Retention = Retention()):
        self.path = path
        self.retention = retention
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            if self._db.execute("SELECT NOT EXISTS (SELECT 1 FROM rollups) AND EXISTS (SELECT 1 FROM samples)"
                                ).fetchone()[0]:
                for w in ROLLUP_WIDTHS:          # a file from before rollups: sum it up once
                    self._db.execute(_ROLLUP_BACKFILL, {"w": w})
        path.chmod(0o600)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writes ------------------------------------------------------------------------------
    def add_samples(self, site: str, ts: float, samples: list[Sample]) -> None:
        rows = [(ts, site, s.uplink, s.state, s.rtt_ms, s.loss_pct, s.rx_rate, s.tx_rate,
                 s.handshake_age, s.share) for s in samples]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT INTO samples VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
                self._db.executemany("INSERT INTO rollups VALUES (?,?,?,?,?,?,?,?,?,?,?,?) " + _ROLLUP_MERGE,
                                     [_rollup_row(site, ts, s, w) for s in samples for w in ROLLUP_WIDTHS])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def add_event(self, site: str, kind: str, subject: str, result: str, message: str,
                  ts: Optional[float] = None) -> Event:
        ts = time.time() if ts is None else ts
        with self._lock:
            cur = self._db.execute("INSERT INTO events (ts, site, kind, subject, result, message) "
                                   "VALUES (?,?,?,?,?,?)", (ts, site, kind, subject, result, message))
        return Event(int(cur.lastrowid or 0), ts, site, kind, subject, result, message)

    def transition(self, site: str, subject: str, state: str,
                   ts: float) -> Optional[tuple[Optional[str], float]]:
        """Remember ``state`` for ``subject``; return the previous (state, since) if it changed,
        (None, ts) when first seen, None when unchanged. Kept in the database so a restart does
        not report every uplink as a fresh change."""
        with self._lock:
            row = self._db.execute("SELECT state, since FROM last_state WHERE site=? AND subject=?",
                                   (site, subject)).fetchone()
            if row is not None and row[0] == state:
                return None
            self._db.execute("INSERT OR REPLACE INTO last_state VALUES (?,?,?,?)", (site, subject, state, ts))
        return (row[0], row[1]) if row is not None else (None, ts)

    def prune(self, now: Optional[float] = None) -> None:
        now = time.time() if now is None else now
        r = self.retention
        with self._lock:
            self._db.execute("DELETE FROM samples WHERE ts < ?", (now - r.sample_hours * 3600,))
            self._db.execute("DELETE FROM rollups WHERE ts < ?", (now - r.sample_hours * 3600,))
            self._db.execute("DELETE FROM events WHERE ts < ?", (now - r.event_days * 86400,))
            self._db.execute("DELETE FROM events WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() "
                             "OVER (PARTITION BY site ORDER BY id DESC) AS n FROM events) WHERE n > ?)",
                             (r.max_events,))

    # -- reads -------------------------------------------------------------------------------
    def events(self, site: str, limit: int = 50) -> list[Event]:
        with self._lock:
            rows = self._db.execute("SELECT id, ts, site, kind, subject, result, message FROM events "
                                    "WHERE site=? ORDER BY id DESC LIMIT ?", (site, limit)).fetchall()
        return [Event(*row) for row in rows]

    def last_event(self, site: str, kind: str) -> Optional[Event]:
        with self._lock:
            row = self._db.execute("SELECT id, ts, site, kind, subject, result, message FROM events "
                                   "WHERE site=? AND kind=? ORDER BY id DESC LIMIT 1", (site, kind)).fetchone()
        return Event(*row) if row else None

    def series(self, site: str, uplink: str, since: float, buckets: int = 240) -> list[SeriesRow]:
        """(ts, rtt_ms, loss_pct, rx_rate, tx_rate) averaged into at most ``buckets`` points;
        loss takes the bucket's worst value so a short outage is not averaged away. Read from
        the widest rollup that still gives ``buckets`` points (the samples for short windows)."""
        width = max(1.0, (time.time() - since) / buckets)
        roll = max((w for w in ROLLUP_WIDTHS if w <= width), default=None)
        with self._lock:
            if roll is None:
                rows = self._db.execute(
                    "SELECT MIN(ts), AVG(rtt_ms), MAX(loss_pct), AVG(rx_rate), AVG(tx_rate) FROM samples "
                    "WHERE site=? AND uplink=? AND ts >= ? GROUP BY CAST(ts / ? AS INTEGER) ORDER BY 1",
                    (site, uplink, since, width)).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT MIN(ts), SUM(rtt_sum) / NULLIF(SUM(rtt_n), 0), MAX(loss_max), "
                    "SUM(rx_sum) / NULLIF(SUM(rx_n), 0), SUM(tx_sum) / NULLIF(SUM(tx_n), 0) FROM rollups "
                    "WHERE site=? AND uplink=? AND width=? AND bucket >= ? GROUP BY bucket / ? ORDER BY 1",
                    (site, uplink, roll, int(since // roll), max(1, int(width // roll)))).fetchall()
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {t: int(self._db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                    for t in ("samples", "events", "rollups")}

