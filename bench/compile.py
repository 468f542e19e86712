"""How long validate and render take: 2, 20 and 60 uplinks (mwan3's limit), and 1,000 sites.

validate = parse + check the YAML; render = key store + compile + write `uci export` files.
Run: python bench/compile.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mwanctl.compile.templates import Templates  # noqa: E402
from mwanctl.render import write_tree  # noqa: E402
from mwanctl.site import prepare  # noqa: E402
from mwanctl.topology.load import load_topology  # noqa: E402


def topology(site: str, uplinks: int) -> str:
    ups = "".join(f"  - name: u{i}\n    host: 10.1.{i // 200}.{i % 200 + 2}\n    weight: {i % 5 + 1}\n"
                  for i in range(uplinks))
    return (f"site: {site}\nmother:\n  host: 10.1.0.1\n  lan: {{subnet: 192.168.1.0/24}}\n"
            f"uplinks:\n{ups}rules:\n  - {{name: https, proto: tcp, dest_port: '443', sticky: true, policy: balanced}}\n")


def timed(fn, repeat: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), min(runs)


def one_site(tmp: Path, uplinks: int, repeat: int) -> None:
    path = tmp / f"site{uplinks}.yaml"
    path.write_text(topology(f"s{uplinks}", uplinks))
    templates = Templates()
    state = tmp / "state"
    prepare(load_topology(path), state, templates)      # first render: generates the keys
    v_med, v_min = timed(lambda: load_topology(path), repeat)

    def render() -> None:
        compiled, _ = prepare(load_topology(path), state, templates)
        write_tree(compiled, tmp / f"out{uplinks}", batch=True)
    r_med, r_min = timed(render, repeat)
    print(f"{uplinks:>4} uplinks   validate {v_med * 1000:8.1f} ms (min {v_min * 1000:.1f})   "
          f"render {r_med * 1000:8.1f} ms (min {r_min * 1000:.1f})")


def many_sites(tmp: Path, sites: int) -> None:
    paths = []
    for i in range(sites):
        p = tmp / f"many{i}.yaml"
        p.write_text(topology(f"site{i}", 3))
        paths.append(p)
    templates = Templates()
    state = tmp / "state-many"
    t0 = time.perf_counter()
    topos = [load_topology(p) for p in paths]
    t1 = time.perf_counter()
    for t in topos:
        prepare(t, state, templates)                    # includes key generation for 3 tunnels
    t2 = time.perf_counter()
    for t in topos:
        compiled, _ = prepare(t, state, templates)
        write_tree(compiled, tmp / "out-many" / t.site)
    t3 = time.perf_counter()
    print(f"{sites} sites x 3 uplinks: validate {t1 - t0:.2f} s, first render (new keys) {t2 - t1:.2f} s, "
          f"render {t3 - t2:.2f} s ({(t3 - t2) / sites * 1000:.1f} ms per site)")


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for n in (2, 20, 60):
            one_site(tmp, n, repeat=5 if n < 60 else 3)
        many_sites(tmp, 1000)


if __name__ == "__main__":
    main()
