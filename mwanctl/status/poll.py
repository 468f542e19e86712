"""One status poll: which probes to ask which router, and the answers turned into a ``SiteStatus``.

``mwanctl status`` and the web poller both run this (the same probes, the same failure
handling), and differ only in how they ask: the command opens a connection per router in turn,
the poller keeps connections open and asks every router at once. How to ask is therefore passed
in (``ask``, and optionally ``gather`` to run the questions together); this module opens nothing.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Optional, Union

from mwanctl.errors import CommandError, MwanctlError
from mwanctl.status import Expectation, SiteStatus, status_or_unknown
from mwanctl.topology.model import Topology, Uplink
from mwanctl.wanverify import dump_entry

MOTHER_PROBES = ("mwan3_status", "wg_dump", "uptime", "epoch")   # what `mwanctl status` asks the mother
UPLINK_PROBES = ("wan_status",)                                  # and, with --uplinks, each uplink router
OTHER_WAN_PROBES = ("iface_dump",)   # an uplink whose `wan:` block names another interface than `wan`

Answer = Union[Mapping[str, str], MwanctlError]          # a router's probe texts, or why it did not answer
Ask = Callable[[str, tuple[str, ...]], Answer]           # (router, probes) -> answer; raises nothing it expects
Gather = Callable[[dict[str, Callable[[], Answer]]], dict[str, Answer]]   # run these questions, any order


@dataclass(frozen=True)
class Poll:
    """One poll's result: the status, and each asked router's answer (or error)."""

    status: SiteStatus
    answers: dict[str, Answer]

    def reach(self) -> dict[str, Optional[str]]:
        """Router -> None when it answered, else why not."""
        return {r: (str(a) if isinstance(a, MwanctlError) else None) for r, a in self.answers.items()}


def mother_probes(topo: Topology) -> tuple[str, ...]:
    """The mother's probes: the handover tracker's too when an uplink uses it, the upstream DNS
    servers' with `dns:`."""
    return (MOTHER_PROBES + (("tracker",) if any(u.tracking.tracker for u in topo.uplinks) else ())
            + (("dns",) if topo.dns is not None else ()))


def poll_site(topo: Topology, exp: Expectation, ask: Ask, ask_uplinks: bool, clock: Callable[[], float],
              gather: Optional[Gather] = None) -> Poll:
    """Ask the mother (and with ``ask_uplinks`` every uplink router about its own WAN), then build.

    Without ``gather`` the mother is asked first and the uplinks only when she answered (a status
    that cannot be told needs no more connections); with it, all at once. A mother that connected
    but could not run or read its probes gives UNKNOWN ("probe failed"), one that could not be
    reached "unreachable"; an uplink router's error becomes its ``wan_status`` text.
    """
    mother = topo.mother.name
    questions: dict[str, Callable[[], Answer]] = {mother: lambda: ask(mother, mother_probes(topo))}
    if ask_uplinks:
        for u in topo.uplinks:
            probes = UPLINK_PROBES if _wan_iface(u) == "wan" else OTHER_WAN_PROBES
            questions[u.name] = functools.partial(ask, u.name, probes)
    if gather is not None:
        answers = gather(questions)
    else:
        answers = {mother: questions.pop(mother)()}
        if not isinstance(answers[mother], MwanctlError):
            answers.update({r: q() for r, q in questions.items()})
    m = answers[mother]
    if isinstance(m, CommandError):      # connected, but the probes could not be run or read
        return Poll(SiteStatus.unknown(mother, str(m)), answers)
    if isinstance(m, MwanctlError):
        return Poll(SiteStatus.unreachable(mother, str(m)), answers)
    ups: Optional[dict[str, Mapping[str, str]]] = None
    if ask_uplinks:
        ups = {r: ({"wan_status": f"ERROR: {a}"} if isinstance(a, MwanctlError)
                   else _as_wan_status(a, _wan_iface(topo.uplink(r))))
               for r, a in answers.items() if r != mother}
    return Poll(status_or_unknown(exp, m, ups, now=clock()), answers)


def _wan_iface(u: Uplink) -> str:
    """The uplink router's internet interface: the one its `wan:` block owns, else `wan`."""
    return u.wan.interface if u.wan is not None else "wan"


def _as_wan_status(answer: Mapping[str, str], iface: str) -> Mapping[str, str]:
    """An ``iface_dump`` answer cut down to ``iface``'s entry, which is what ``wan_status``
    (`ubus call network.interface.<iface> status`) prints for it: one status reader for both."""
    if "wan_status" in answer or "iface_dump" not in answer:
        return answer
    text = answer["iface_dump"]
    if text.startswith("ERROR"):
        return {"wan_status": text}
    try:
        it = dump_entry(text, iface)
    except ValueError as exc:
        return {"wan_status": f"ERROR: {exc}"}
    return {"wan_status": json.dumps(it) if it is not None else f"ERROR: netifd has no interface {iface}"}


__all__ = ["MOTHER_PROBES", "OTHER_WAN_PROBES", "UPLINK_PROBES", "Answer", "Ask", "Gather", "Poll", "mother_probes", "poll_site"]
