"""The key store's rules that `keys rotate --older-than` and slot allocation depend on."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mwanctl.errors import KeyStoreError
from mwanctl.keys import KeyStore, generate
from mwanctl.rotate import RotateError, due, parse_age


def test_parse_age_units_and_errors() -> None:
    assert parse_age("90d") == dt.timedelta(days=90)
    assert parse_age("12h") == dt.timedelta(hours=12)
    assert parse_age("2w") == dt.timedelta(weeks=2)
    with pytest.raises(RotateError, match="90d, 12h, 2w"):
        parse_age("ninety days")


def test_due_picks_old_keys_and_unfinished_rotations(tmp_path: Path) -> None:
    store = KeyStore.open("s", tmp_path)
    old = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    store.ensure([("a", None), ("b", None), ("c", None)], 64, now=old)
    for name in ("b", "c"):                       # b and c got new keys in April
        for end in ("mother", "uplink"):
            store.set_pair(name, end, "current", generate(dt.datetime(2026, 4, 5, tzinfo=dt.timezone.utc)))
    store.set_pair("c", "uplink", "pending", generate())   # c: a rotation left unfinished
    now = old + dt.timedelta(days=100)
    assert due(store, ["a", "b", "c"], dt.timedelta(days=90), now) == ["a", "c"]
    assert due(store, ["a", "b", "c"], None, now) == ["a", "b", "c"]


def test_slots_are_stable_when_uplinks_come_and_go(tmp_path: Path) -> None:
    store = KeyStore.open("s", tmp_path)
    store.ensure([("a", None), ("b", None), ("c", None)], 8)
    first = store.assign_slots([("a", None), ("b", None), ("c", None)], 8)
    assert first == {"a": 0, "b": 1, "c": 2}
    assert store.assign_slots([("a", None), ("c", None)], 8) == {"a": 0, "c": 2}     # b removed
    assert store.assign_slots([("a", None), ("c", None), ("d", None)], 8)["d"] == 3  # b's slot kept
    assert store.assign_slots([("a", 5), ("b", None)], 8) == {"a": 5, "b": 1}        # explicit wins
    with pytest.raises(KeyStoreError, match="no free slot"):
        store.assign_slots([("a", None), ("b", None), ("c", None), ("d", None)], 3)
