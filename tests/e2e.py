"""Helpers for end-to-end tests: a topology whose routers are dropbear test routers on 127.0.0.1."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

try:
    from tests import routers
except ImportError:  # pragma: no cover - tests/ on sys.path
    import routers  # type: ignore[no-redef]


@dataclass
class Site:
    path: Path
    state_dir: Path
    known_hosts: Path
    routers: dict[str, "routers.TestRouter"]

    def argv(self, *args: str) -> list[str]:
        return ["--state-dir", str(self.state_dir), *args]


def run_cli(site: Any, capsys: Any, *args: str) -> tuple[int, str, str]:
    """``mwanctl <args>`` in this process against ``site`` (anything with ``argv``): the exit code,
    stdout and stderr, and never a traceback."""
    from mwanctl.cli import main

    code = main(site.argv(*args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def write_site(tmp: Path, rs: dict[str, Any], uplinks: list[str], extra: str = "",
               uplink_extra: dict[str, str] | None = None, confirm_timeout: int = 30) -> Site:
    """Topology naming each router by a documentation address (192.0.2.x: never contacted);
    `access` sends SSH to the router's 127.0.0.1 port, with its key and known_hosts."""
    known = tmp / "known_hosts"
    with known.open("w") as f:
        for r in rs.values():
            f.write(Path(r.known_hosts_path).read_text())
    lines = ["site: lab", "mother:", "  host: 192.0.2.1", "  lan: {subnet: 192.168.1.0/24}", "uplinks:"]
    for i, name in enumerate(uplinks):
        lines += [f"  - name: {name}", f"    host: 192.0.2.{10 + i}", f"    weight: {i + 1}"]
        lines += ["    " + x for x in (uplink_extra or {}).get(name, "").splitlines() if x]
    lines += [extra, "access:", "  defaults:", f"    known_hosts: {known}", f"    confirm_timeout: {confirm_timeout}"]
    for name, r in rs.items():
        lines += [f"  {name}:", "    host: 127.0.0.1", f"    port: {r.port}", f"    key: {r.key_path}",
                  f"    known_hosts: {known}", f"    confirm_timeout: {confirm_timeout}"]
    path = tmp / "topology.yaml"
    path.write_text("\n".join(lines) + "\n")
    return Site(path, tmp / "state", known, rs)


def start_site(router_factory: Callable[..., Any], tmp: Path, uplinks: list[str],
               files: dict[str, dict[str, str]] | None = None, **kw: Any) -> Site:
    rs = {"mother": router_factory("mother", files=(files or {}).get("mother"))}
    for u in uplinks:
        rs[u] = router_factory(u, files=(files or {}).get(u, _uplink_stock()))
    return write_site(tmp, rs, uplinks, **kw)


def _uplink_stock() -> dict[str, str]:
    """A stock uplink router: OpenWrt's default network and firewall, no mwan3."""
    stock = Path(__file__).parent / "data" / "stock"
    return {p: (stock / p).read_text() for p in ("network", "firewall")}

