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

from mwanctl.status import model
from mwanctl.status.build import MAX_METRIC, build_status, compute_shares, status_or_unknown
from mwanctl.status.model import *  # noqa: F403 - the model's names, listed once (model.__all__)
from mwanctl.status.render import SCHEMA, render_table, summary_line, to_json
from mwanctl.status.text import format_bytes, format_duration, handshake_text

__all__ = [
    "MAX_METRIC",
    "SCHEMA",
    "build_status",
    "compute_shares",
    "format_bytes",
    "format_duration",
    "handshake_text",
    "render_table",
    "status_or_unknown",
    "summary_line",
    "to_json",
]
__all__ += model.__all__
