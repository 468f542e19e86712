"""Deploy: read facts from every router, plan, apply (uplinks first, mother last), confirm.

napalm's contract, split so the planning is pure (``mwanctl.plan``) and this module only
orders the I/O: bounded parallel reads, applies that each arm a router-side rollback, and a
confirm from a *fresh* connection that proves the router is still reachable.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from mwanctl.compile import Compiled
from mwanctl.errors import ApplyError, ConfirmError, MwanctlError, TransportError
from mwanctl.plan import RouterPlan, plan_router
from mwanctl.transports.base import RouterState, Transport

Connect = Callable[[str], Transport]
Progress = Callable[[str, str], None]     # (router, message)


@dataclass
class RouterOutcome:
    router: str
    status: str          # "unchanged" | "applied" | "failed" | "not-confirmed" | "skipped" | "unreachable"
    message: str = ""
    round_trips: int = 0
    bytes_sent: int = 0


@dataclass
class Deployment:
    compiled: Compiled
    connect: Connect
    confirm_timeout: int = 90
    parallel: int = 8
    progress: Progress = lambda r, m: None
    states: dict[str, RouterState] = field(default_factory=dict)
    plans: dict[str, RouterPlan] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)     # router -> why it could not be read
    outcomes: dict[str, RouterOutcome] = field(default_factory=dict)
    _transports: dict[str, Transport] = field(default_factory=dict)

    # -- facts and plan --------------------------------------------------------------------------
    def read(self) -> None:
        """Read every router's config in parallel (one round trip each) and plan it."""
        routers = list(self.compiled.routers)
        with ThreadPoolExecutor(max_workers=max(1, min(self.parallel, len(routers)))) as pool:
            for router, result in zip(routers, pool.map(self._read_one, routers), strict=True):
                if isinstance(result, MwanctlError):
                    self.errors[router] = str(result)
                    self.outcomes[router] = RouterOutcome(router, "unreachable", str(result))
                else:
                    self.states[router] = result
                    self.plans[router] = plan_router(self.compiled.routers[router], result)

    def _read_one(self, router: str) -> RouterState | MwanctlError:
        cfg = self.compiled.routers[router]
        try:
            t = self.connect(router)
            self._transports[router] = t
            self.progress(router, "reading config")
            return t.read_state(cfg.packages)
        except MwanctlError as exc:
            return exc

    @property
    def changed(self) -> bool:
        return any(p.changed for p in self.plans.values())

    @property
    def blocked(self) -> list[str]:
        """Why the deploy must not start: unreachable routers and per-router problems."""
        out = [f"{r}: {e}" for r, e in self.errors.items()]
        out += [f"{r}: {p}" for r, plan in self.plans.items() for p in plan.problems]
        return out

    # -- apply -----------------------------------------------------------------------------------
    def apply(self) -> dict[str, RouterOutcome]:
        """Uplinks in parallel, then the mother only if every uplink succeeded."""
        uplinks = [r for r, c in self.compiled.routers.items() if c.role == "uplink"]
        mothers = [r for r, c in self.compiled.routers.items() if c.role == "mother"]
        with ThreadPoolExecutor(max_workers=max(1, min(self.parallel, len(uplinks) or 1))) as pool:
            for outcome in pool.map(self._apply_one, uplinks):
                self.outcomes[outcome.router] = outcome
        bad = [o.router for o in self.outcomes.values() if o.status not in ("unchanged", "applied")]
        for m in mothers:
            if bad:
                self.outcomes[m] = RouterOutcome(m, "skipped", "not applied because "
                                                 f"{', '.join(sorted(bad))} failed; the mother keeps its old config")
            else:
                self.outcomes[m] = self._apply_one(m)
        return self.outcomes

    def _apply_one(self, router: str) -> RouterOutcome:
        return self.apply_router(router, self.plans[router], self._transports[router])

    def apply_router(self, router: str, plan: RouterPlan, t: Transport) -> RouterOutcome:
        """Apply one router's plan over ``t`` and confirm it from a fresh connection (key
        rotation uses this directly, with plans limited to one tunnel)."""
        if not plan.changed:
            self.progress(router, "up to date")
            return self._outcome(router, "unchanged", "up to date", [t])
        assert plan.apply is not None
        try:
            self.progress(router, f"applying {plan.op_count} change(s)")
            t.apply(plan.apply, self.confirm_timeout)
        except ApplyError as exc:
            return self._outcome(router, "failed", f"{exc}; {router} is on its old config", [t])
        except TransportError as exc:
            return self._outcome(router, "failed", f"{exc}; {router} may have armed its rollback: it "
                                 f"returns to its old config within {self.confirm_timeout} s unless confirmed", [t])
        self.progress(router, "applied; reconnecting to confirm")
        fresh: Optional[Transport] = None
        try:
            fresh = self.connect(router)
            fresh.confirm()
        except (ConfirmError, TransportError) as exc:
            return self._outcome(router, "not-confirmed",
                                 f"applied but could not confirm ({exc}); {router} restores its previous "
                                 f"config by itself within {self.confirm_timeout} s", [t] + ([fresh] if fresh else []))
        self.progress(router, "confirmed")
        return self._outcome(router, "applied", "applied and confirmed", [t, fresh])

    def _outcome(self, router: str, status: str, msg: str, used: Sequence[Optional[Transport]]) -> RouterOutcome:
        trips = sum(x.counters.round_trips for x in used if x is not None)
        sent = sum(x.counters.bytes_sent for x in used if x is not None)
        for x in used[1:]:
            if x is not None:
                x.close()
        return RouterOutcome(router, status, msg, trips, sent)

    def close(self) -> None:
        for t in self._transports.values():
            t.close()
