"""Issue 9, "Files, keys and secrets": private files are written the safe way, the key store is
locked, and no private key reaches any message. Real files, real processes, real flock."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mwanctl import privfile
from mwanctl.errors import KeyStoreError
from mwanctl.keys import KeyStore, generate, store_lock
from mwanctl.privfile import PrivateFileError, write_private

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "three-weighted.yaml"
KEY_RE = re.compile(r"option private_key '([A-Za-z0-9+/=]{44})'")


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _cli(*args: str, state: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MWANCTL_STATE_DIR=str(state))
    env.pop("MWANCTL_TRACEBACK", None)
    return subprocess.run([sys.executable, "-m", "mwanctl", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


# --------------------------------------------------------------------------- write_private


def test_leftover_world_readable_temp_file_does_not_leak_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "network"
    leftover = tmp_path / ".network.tmp"          # what the old code reused with O_TRUNC
    leftover.write_text("stale")
    leftover.chmod(0o644)
    target.write_text("old")
    target.chmod(0o644)
    write_private(target, "option private_key 'x'\n")
    assert target.read_text() == "option private_key 'x'\n"
    assert _mode(target) == 0o600
    assert leftover.read_text() == "stale"         # not ours: left alone, never written to


def test_symlink_at_target_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "network").symlink_to(victim)
    with pytest.raises(PrivateFileError, match="symlink"):
        write_private(tmp_path / "out" / "network", "secret")
    assert victim.read_text() == "precious"
    assert (tmp_path / "out" / "network").is_symlink()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["network"]   # no temp file left


def test_symlink_planted_at_the_temp_name_is_not_followed(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Even if an attacker guesses the temp name, O_EXCL|O_NOFOLLOW refuse the planted link."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    monkeypatch.setattr(privfile.secrets, "token_hex", lambda n: "guessed")
    (tmp_path / ".network.guessed.tmp").symlink_to(victim)
    with pytest.raises(PrivateFileError, match="temporary file"):
        write_private(tmp_path / "network", "secret")
    assert victim.read_text() == "precious"
    assert not (tmp_path / "network").exists()


def test_symlinked_directory_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(PrivateFileError, match="symlink or not a directory"):
        write_private(tmp_path / "link" / "network", "secret")
    assert list(real.iterdir()) == []


def test_render_writes_every_file_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        r = _cli("render", str(EXAMPLE), "-o", str(tmp_path / "out"), "--batch", state=tmp_path / "st",
                 cwd=ROOT)
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert files and {_mode(p) for p in files} == {0o600}
    assert {_mode(p) for p in (tmp_path / "st").rglob("state.json")} == {0o600}


def test_render_refuses_a_planted_symlink_for_a_key_file(tmp_path: Path) -> None:
    r0 = _cli("render", str(EXAMPLE), "-o", str(tmp_path / "out"), state=tmp_path / "st", cwd=ROOT)
    assert r0.returncode == 0, r0.stderr
    victim = tmp_path / "victim"
    victim.write_text("")
    networks = sorted((tmp_path / "out").glob("*/etc/config/network"))
    assert networks
    for n in networks:
        n.unlink()
        n.symlink_to(victim)
    r = _cli("render", str(EXAMPLE), "-o", str(tmp_path / "out"), state=tmp_path / "st", cwd=ROOT)
    assert r.returncode == 1
    assert "is a symlink; refusing" in r.stderr and "Traceback" not in r.stderr
    assert victim.read_text() == ""


# --------------------------------------------------------------------------- the key store lock


def _rendered_private_keys(out: Path) -> set[str]:
    keys: set[str] = set()
    for f in out.rglob("network"):
        keys |= set(KEY_RE.findall(f.read_text()))
    return keys


def _stored_private_keys(state: Path) -> set[str]:
    data = json.loads(next(state.rglob("state.json")).read_text())
    return {pair["private"] for t in data["tunnels"].values() for end in ("mother", "uplink")
            for pair in t[end].values()}


def test_concurrent_renders_on_a_fresh_store_only_render_stored_keys(tmp_path: Path) -> None:
    """The issue saw 8 of 20 such runs render a key the store lost; with the lock: none."""
    runs = 12
    state = tmp_path / "state"

    def one(i: int) -> subprocess.CompletedProcess[str]:
        return _cli("render", str(EXAMPLE), "-o", str(tmp_path / f"out{i}"), state=state, cwd=ROOT)

    with ThreadPoolExecutor(runs) as pool:
        results = list(pool.map(one, range(runs)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
    stored = _stored_private_keys(state)
    rendered = [_rendered_private_keys(tmp_path / f"out{i}") for i in range(runs)]
    assert all(keys and keys <= stored for keys in rendered)
    assert len({frozenset(k) for k in rendered}) == 1       # every run used the same keys


def test_save_refuses_to_clobber_a_store_changed_by_another_run(tmp_path: Path) -> None:
    a = KeyStore.open("s", tmp_path)
    a.ensure([("x", None)], 8)
    a.save()
    b = KeyStore.open("s", tmp_path)
    first = KeyStore.open("s", tmp_path)
    b.ensure([("x", None), ("y", None)], 8)
    b.save()                                   # y's keys are now on disk
    first.ensure([("x", None), ("z", None)], 8)
    with pytest.raises(KeyStoreError, match="changed by another mwanctl run"):
        first.save()
    assert set(KeyStore.open("s", tmp_path).tunnels) == {"x", "y"}


def test_a_held_lock_makes_another_process_wait_then_fail_clearly(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from mwanctl.keys import store_lock\n"
         "with store_lock('s', Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(30)\n",
         str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        with pytest.raises(KeyStoreError, match="locked by another mwanctl run"), \
                store_lock("s", tmp_path, timeout=0.5):
            pass
        assert time.monotonic() - start >= 0.5
    finally:
        holder.kill()
        holder.wait()
    # released with the holder, and re-entrant within one thread
    with store_lock("s", tmp_path, timeout=5), store_lock("s", tmp_path, timeout=0):
        pass


# --------------------------------------------------------------------------- no key in any message


def _corruptions(data: dict, priv: str) -> list[tuple[str, str]]:
    """(what, file text) pairs of hand-damaged stores, each carrying a real private key."""
    def variant(fn) -> str:  # type: ignore[no-untyped-def]
        d = json.loads(json.dumps(data))
        fn(d)
        return json.dumps(d, indent=1)

    first = next(iter(data["tunnels"]))
    cur = lambda d: d["tunnels"][first]["mother"]["current"]  # noqa: E731
    text = json.dumps(data, indent=1)
    cut = text.index(priv) + 20
    return [
        ("index holds the key", variant(lambda d: d["tunnels"][first].__setitem__("index", priv))),
        ("pair is the bare key", variant(lambda d: d["tunnels"][first]["mother"].__setitem__("current", priv))),
        ("private key truncated", variant(lambda d: cur(d).__setitem__("private", priv[:-2]))),
        ("public does not match", variant(lambda d: cur(d).__setitem__("public", generate().public))),
        ("created is the key", variant(lambda d: cur(d).__setitem__("created", priv))),
        ("schema is the key", variant(lambda d: d.__setitem__("schema", priv))),
        ("file cut inside a key", text[:cut]),
        ("stray quote after a key", text.replace(priv + '"', priv + '""', 1)),
        ("not UTF-8 inside a key", text.replace(priv, priv[:10] + "\udcff", 1).encode("utf-8", "surrogateescape")
         .decode("latin-1")),
    ]


def test_a_hand_corrupted_store_never_echoes_a_private_key(tmp_path: Path) -> None:
    state = tmp_path / "st"
    r = _cli("render", str(EXAMPLE), "-o", str(tmp_path / "out"), state=state, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    path = next(state.rglob("state.json"))
    data = json.loads(path.read_text())
    privs = sorted(_stored_private_keys(state))
    for what, text in _corruptions(data, privs[0]):
        path.write_bytes(text.encode("latin-1") if "not UTF-8" in what else text.encode())
        path.chmod(0o600)
        for cmd in (("render", str(EXAMPLE), "-o", str(tmp_path / "o2")), ("keys", "show", str(EXAMPLE)),
                    ("status", str(EXAMPLE), "--json")):
            r = _cli(*cmd, state=state, cwd=ROOT)
            shown = r.stdout + r.stderr
            assert r.returncode != 0, (what, cmd)
            assert "Traceback" not in shown and "internal error" not in shown, (what, cmd, shown)
            for p in privs:   # not the whole key, nor any 12-character piece of one
                assert not any(p[i:i + 12] in shown for i in range(0, 33)), (what, cmd, shown)
