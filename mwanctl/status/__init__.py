"""``mwanctl status``: expectation + raw probes in, one ``SiteStatus`` out, drawn as a table or JSON.

Data flows one way: ``build`` (pure: no I/O, no clock) turns what the topology expects (``expect``)
and what the routers printed into the ``model``'s ``SiteStatus``; ``exit_code`` and the renderers
(``render``: table, JSON, summary) only read that model; ``poll`` is the one round of questions
the status command and the web poller both ask. This package re-exports the public names.

Every mwan3 interface is a row: an uplink with IPv6 has two (``mw_<u>`` and its alias
``mw_<u>6``), so an offline IPv6 side is never hidden behind an online IPv4 one. Exit codes follow
the monitoring-plugin convention (OK, WARNING, CRITICAL, UNKNOWN; see ``exit_code``).
"""

from __future__ import annotations

from mwanctl.status.build import MAX_METRIC, build_status, compute_shares, status_or_unknown
from mwanctl.status.model import (
    CRITICAL,
    OK,
    STALE_HANDSHAKE_AFTER,
    STATES,
    UNKNOWN,
    WARNING,
    Expectation,
    ExpectedMember,
    ExpectedUplink,
    MemberShare,
    OwnWan,
    PolicyStatus,
    Problem,
    SiteStatus,
    Target,
    TrackTimes,
    UplinkRow,
    WgView,
    exit_code,
)
from mwanctl.status.render import SCHEMA, render_table, summary_line, to_json
from mwanctl.status.text import format_bytes, format_duration, handshake_text

__all__ = [
    "CRITICAL",
    "MAX_METRIC",
    "OK",
    "SCHEMA",
    "STALE_HANDSHAKE_AFTER",
    "STATES",
    "UNKNOWN",
    "WARNING",
    "Expectation",
    "ExpectedMember",
    "ExpectedUplink",
    "MemberShare",
    "OwnWan",
    "PolicyStatus",
    "Problem",
    "SiteStatus",
    "Target",
    "TrackTimes",
    "UplinkRow",
    "WgView",
    "build_status",
    "compute_shares",
    "exit_code",
    "format_bytes",
    "format_duration",
    "handshake_text",
    "render_table",
    "status_or_unknown",
    "summary_line",
    "to_json",
]
