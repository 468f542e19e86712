"""The one poll loop of the tests: wait for a condition a daemon or a timer makes true."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(cond: Callable[[], object], timeout: float, step: float = 0.1) -> bool:
    """Whether ``cond()`` became true within ``timeout`` seconds (asked every ``step``, and once
    more at the end, so a slow machine that misses the last tick still counts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())
