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
from mwanctl.errors import (
    ApplyError,
    ApplyInterrupted,
    ConfirmError,
    ExitStatus,
    MwanctlError,
    RolledBack,
    TransportError,
)
from mwanctl.plan import RouterPlan, plan_router
from mwanctl.transports.base import Receipt, RouterState, Transport

Connect = Callable[[str], Transport]
Progress = Callable[[str, str], None]     # (router, message)


# Every outcome a router can end a deploy in: what the router is on, and the exit code.
OUTCOMES: dict[str, tuple[str, ExitStatus]] = {
    "unchanged": ("its config already matched: nothing sent", ExitStatus.OK),
    "applied": ("applied and confirmed: on the new config", ExitStatus.OK),
    "failed": ("on its old config: nothing committed, or rolled back at once", ExitStatus.APPLY_FAILED),
    "unreachable": ("on its old config: unreachable, or refused before anything was committed", ExitStatus.CONNECT),
    # a skipped mother adds no code of its own: the deploy exits with its failed uplinks' code
    "skipped": ("on its old config: not applied because an uplink failed", ExitStatus.OK),
    "not-confirmed": ("applied (or maybe applied) but not confirmed: back on its old config by "
                      "itself when the confirm timeout runs out", ExitStatus.NOT_CONFIRMED),
    "rolled-back": ("applied, but the router had restored its old config when the confirm "
                    "arrived: on its old config", ExitStatus.ROLLED_BACK),
}


@dataclass
class RouterOutcome:
    router: str
    status: str          # a key of OUTCOMES
    message: str = ""
    round_trips: int = 0
    bytes_sent: int = 0

    @property
    def exit_status(self) -> ExitStatus:
        return OUTCOMES[self.status][1]

    @property
    def ok(self) -> bool:
        return self.status in ("applied", "unchanged")


def one_line(router: str, exc: BaseException) -> str:
    """An error's text for a line that already starts with the router's name."""
    text = str(exc) or type(exc).__name__
    while text.startswith(f"{router}: "):
        text = text[len(router) + 2:]
    return text


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
                if isinstance(result, BaseException):
                    self.errors[router] = one_line(router, result)
                    self.outcomes[router] = RouterOutcome(router, "unreachable", self.errors[router])
                    continue
                self.states[router] = result
                try:
                    self.plans[router] = plan_router(self.compiled.routers[router], result)
                except MwanctlError as exc:
                    self.errors[router] = one_line(router, exc)

    def _read_one(self, router: str) -> RouterState | BaseException:
        cfg = self.compiled.routers[router]
        try:
            t = self.connect(router)
            self._transports[router] = t
            self.progress(router, "reading config")
            return t.read_state(cfg.packages)
        except MwanctlError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - one router's surprise must not hide the others
            return MwanctlError(f"internal error reading the router: {type(exc).__name__}: {exc}")

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
        rotation uses this directly, with plans limited to one tunnel).

        Every error ends as this router's outcome, saying what the router is on; not even an
        internal error escapes (the other routers' outcomes must still be printed)."""
        try:
            return self._apply_and_confirm(router, plan, t)
        except Exception as exc:  # noqa: BLE001 - every router ends in a printed outcome
            return RouterOutcome(router, "not-confirmed", f"internal error during apply "
                                 f"({type(exc).__name__}: {exc}); if it was committed, {router} "
                                 f"restores its old config by itself within {self.confirm_timeout} s")

    def _apply_and_confirm(self, router: str, plan: RouterPlan, t: Transport) -> RouterOutcome:
        if not plan.changed:
            self.progress(router, "up to date")
            return self._outcome(router, "unchanged", "up to date", [t])
        assert plan.apply is not None
        try:
            self.progress(router, f"applying {plan.op_count} change(s)")
            receipt = t.apply(plan.apply, self.confirm_timeout)
        except ApplyError as exc:
            return self._outcome(router, "failed", f"{one_line(router, exc)}; {router} is on its old config", [t])
        except ApplyInterrupted as exc:
            return self._outcome(router, "not-confirmed", f"{one_line(router, exc)}; not confirmed", [t])
        except TransportError as exc:  # before anything was sent that could change the router
            return self._outcome(router, "unreachable", f"{one_line(router, exc)}; nothing was committed: "
                                 f"{router} is on its old config", [t])
        except MwanctlError as exc:
            return self._outcome(router, "failed", f"{one_line(router, exc)}; {router} is on its old config", [t])
        if receipt is not None and not receipt.armed:
            return self._outcome(router, "unchanged", "the router already had this config", [t])
        self.progress(router, "applied; reconnecting to confirm")
        return self._confirm(router, receipt, [t])

    def _confirm(self, router: str, receipt: Receipt | None, used: list[Optional[Transport]]) -> RouterOutcome:
        fresh: Optional[Transport] = None
        try:
            fresh = self.connect(router)
            fresh.confirm(receipt)
        except RolledBack as exc:
            return self._outcome(router, "rolled-back", f"applied, but {one_line(router, exc)}",
                                 used + [fresh])
        except (ConfirmError, TransportError) as exc:
            return self._outcome(router, "not-confirmed",
                                 f"applied but could not confirm ({one_line(router, exc)}); {router} restores "
                                 f"its previous config by itself within {self.confirm_timeout} s", used + [fresh])
        except MwanctlError as exc:
            return self._outcome(router, "not-confirmed",
                                 f"applied but the confirm failed ({one_line(router, exc)}); {router} restores "
                                 f"its previous config by itself within {self.confirm_timeout} s", used + [fresh])
        self.progress(router, "confirmed")
        return self._outcome(router, "applied", "applied and confirmed", used + [fresh])

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
