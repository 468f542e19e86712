"""The many-site connection pool on its own (no routers): leases, the reserve, the bound.
The routers' side of the same bound is tests/test_sites.py::test_pool_bound_holds_on_the_routers_side."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from mwanctl.sites import ConnectionPool
from mwanctl.transports.base import ApplyPlan, Receipt, RouterState, Transport


class Counted(Transport):
    """Counts how many of its kind are open; like the SSH transport it connects on first use and
    again when used after ``close``."""

    open = 0
    peak = 0
    lock = threading.Lock()

    def __init__(self, router: str):
        super().__init__(router)
        self.connected = False

    def _connect(self) -> None:
        if not self.connected:
            with Counted.lock:
                self.connected = True
                Counted.open += 1
                Counted.peak = max(Counted.peak, Counted.open)

    def close(self) -> None:
        with Counted.lock:
            if self.connected:
                self.connected = False
                Counted.open -= 1

    def read_state(self, packages: Sequence[str]) -> RouterState:
        self._connect()
        time.sleep(0.01)
        return RouterState({})

    def apply(self, plan: ApplyPlan, confirm_timeout: int) -> Receipt:
        raise NotImplementedError

    def confirm(self, receipt: Receipt | None = None) -> None:
        raise NotImplementedError

    def rollback(self) -> bool:
        return False

    def query(self, names: Sequence[str]) -> dict[str, str]:
        return {}

    def set_drained(self, iface: str, drained: bool, forget: Sequence[str] = ()) -> None:
        raise NotImplementedError


def test_sites_wait_for_a_whole_lease_and_extras_come_from_the_reserve():
    Counted.open = Counted.peak = 0
    pool = ConnectionPool(7)                     # 6 to lease, 1 reserve
    errors: list[BaseException] = []

    def site(i: int) -> None:
        try:
            with pool.lease(3) as lease:
                connect = lease.wrap(Counted)
                held = [connect(f"s{i}r{j}") for j in range(3)]
                for t in held:
                    t.read_state(())
                extra = connect(f"s{i}-extra")   # beyond the lease: the reserve, one at a time
                extra.read_state(())
                extra.close()
                held[0].close()
                held[0].read_state(())           # used after close: takes a slot again
                for t in held:
                    t.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=site, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors and not any(t.is_alive() for t in threads)
    assert pool.peak <= 7 and Counted.peak <= 7, (pool.peak, Counted.peak)
    assert pool.peak >= 6                         # two sites did run at once
    assert pool.open == 0 and Counted.open == 0


def test_a_lease_larger_than_the_pool_is_refused():
    pool = ConnectionPool(5)
    with pytest.raises(ValueError), pool.lease(5):
        pass
    with pytest.raises(ValueError):
        ConnectionPool(2)


def test_ctrl_c_lets_the_running_site_finish_and_starts_no_other():
    import os
    import signal

    from mwanctl.sites import run_all
    ran: list[str] = []
    stop = threading.Event()

    def first() -> None:
        time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGINT)   # the user presses Ctrl-C while this site deploys
        time.sleep(0.3)
        ran.append("first finished")

    def later(name: str) -> None:
        ran.append(name)

    started = run_all([first, lambda: later("second"), lambda: later("third")], 1, stop)
    assert started == [True, False, False]
    assert ran == ["first finished"] and stop.is_set()


def test_what_a_site_leaves_open_is_closed_with_its_lease():
    Counted.open = Counted.peak = 0
    pool = ConnectionPool(4)
    with pool.lease(3) as lease:
        connect = lease.wrap(Counted)
        for i in range(4):                         # the 4th comes from the reserve
            connect(f"r{i}").read_state(())
        assert pool.open == 4
    assert pool.open == 0 and Counted.open == 0
    with pool.lease(3) as lease:                   # the reserve slot is free again
        extra = [lease.wrap(Counted)(f"s{i}") for i in range(4)]
        extra[3].read_state(())
    assert pool.open == 0


def test_the_cli_default_is_the_documented_one():
    from mwanctl.cli import CONNECTIONS
    from mwanctl.sites import DEFAULT_CONNECTIONS

    @CONNECTIONS
    def f(connections: int) -> None: ...
    opt = next(p for p in f.__click_params__ if p.name == "connections")  # type: ignore[attr-defined]
    assert opt.default == DEFAULT_CONNECTIONS == 16
