"""Shared fixtures. Import-safe: nothing here needs root, dropbear or paramiko until used."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

try:
    from tests import netlab, routers
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    import netlab  # type: ignore[no-redef]
    import routers  # type: ignore[no-redef]


@pytest.fixture
def router_factory(tmp_path: Path) -> Iterator[Callable[..., routers.TestRouter]]:
    """Start test routers (``router_factory(name, files=..., ...)``); all stopped at teardown."""
    why = routers.missing_requirements()
    if why:
        pytest.skip(why)
    with routers.started_in(tmp_path) as start:
        yield start


@pytest.fixture
def lab() -> Iterator[netlab.Lab]:
    """A network lab (namespaces, veths, wireguard-go) removed at teardown, even after a failure."""
    why = netlab.skip_reason()
    if why:
        pytest.skip(why)
    with netlab.Lab() as the_lab:
        yield the_lab
