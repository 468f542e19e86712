"""The WAN secrets the examples name by environment variable (test-only values).

examples/pppoe-lte.yaml reads its PPPoE password and SIM PIN from DSL_PASSWORD and LTE_PIN, as a
user would; tests that render every example set these first (the topologies under
tests/topologies read theirs from files next to them instead).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

EXAMPLE_SECRETS = {"DSL_PASSWORD": "example-dsl-password", "LTE_PIN": "1234"}


@contextmanager
def example_secrets() -> Iterator[None]:
    """The variables set for the block, restored (or removed) after it."""
    saved = {k: os.environ.get(k) for k in EXAMPLE_SECRETS}
    os.environ.update(EXAMPLE_SECRETS)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
