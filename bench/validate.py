"""How validation scales: a file with thousands of uplinks, policies and rules.

mwan3 can mark only 60 interfaces, so such a file is refused (MW003). Two figures per size:
  refuse  = `diagnose()` as `mwanctl validate` runs it: read YAML, per-field reading, every
            cross-object check (the refusal itself must be fast, not quadratic);
  checks  = the same with the 60-interface limit lifted, so every cross-object check
            *including* the generated-section-name check (MW010, which compiles the whole
            site) runs on all objects: the cost of the checks themselves.
Sizes 1,250/2,500/5,000 show whether time grows linearly (doubling n should double the time).
First it times every case of the hostile corpus (tests/hostile_corpus.py) through `validate`.
Figures: median of 3 runs, wall and CPU time of this process.
Run: python bench/validate.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from mwanctl.topology import checks  # noqa: E402
from mwanctl.topology.load import diagnose  # noqa: E402


def topology(uplinks: int) -> str:
    ups = "".join(f"  - {{name: u{i}, host: 10.{1 + i // 60000}.{i // 250 % 240}.{i % 250 + 2}, weight: {i % 5 + 1},"
                  f" tracking: {{targets: [1.1.1.1, 9.9.9.9]}}}}\n" for i in range(uplinks))
    pols = "".join(f"  - {{name: p{i}, members: [u{i}, u{(i + 1) % uplinks}]}}\n" for i in range(uplinks // 10))
    rules = "".join(f"  - {{name: r{i}, proto: tcp, dest_port: '{1000 + i}', policy: p{i % max(1, uplinks // 10)}}}\n"
                    for i in range(uplinks // 10))
    return (f"site: big\nmother:\n  host: 192.168.1.1\n  lan: {{subnet: 192.168.1.0/24}}\n"
            f"tunnels: {{pool: 10.128.0.0/9}}\nuplinks:\n{ups}policies:\n{pols}rules:\n{rules}")


def timed(fn, repeat: int) -> tuple[float, float]:
    """(median wall time, median CPU time of this process): on a shared machine the CPU time
    is the steadier figure; both are printed."""
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def corpus_times() -> None:
    """Each hostile-corpus case through `mwanctl validate` (in-process, output discarded)."""
    import contextlib
    import io

    from hostile_corpus import corpus

    from mwanctl.cli import main as cli
    cases = corpus()
    times = []
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.yaml"
        for c in cases:
            path.write_text(c.text, encoding="utf-8", errors="surrogatepass")
            t0 = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                code = cli(["validate", str(path)])
            times.append((time.perf_counter() - t0, c.id, code))
    times.sort()
    worst = times[-1]
    print(f"hostile corpus: {len(times)} cases, exit 1 for {sum(1 for _, _, code in times if code == 1)}; "
          f"median {statistics.median(t for t, _, _ in times) * 1000:.1f} ms, "
          f"max {worst[0] * 1000:.0f} ms ({worst[1]}), over 1 s: {sum(1 for t, _, _ in times if t >= 1)}")


def main() -> None:
    corpus_times()
    with tempfile.TemporaryDirectory() as d:
        for n in (1250, 2500, 5000):
            path = Path(d) / f"u{n}.yaml"
            path.write_text(topology(n))
            topo, diags = diagnose(path)
            rules = sorted({x.rule for x in diags if x.severity == "error"})
            refuse, refuse_min = timed(lambda: diagnose(path), 3)
            limit = checks.MWAN3_IFACE_MAX
            checks.MWAN3_IFACE_MAX = 10 ** 6
            try:
                topo2, diags2 = diagnose(path)
                errors2 = [x for x in diags2 if x.severity == "error"]
                full, full_min = timed(lambda: diagnose(path), 3)
            finally:
                checks.MWAN3_IFACE_MAX = limit
            print(f"{n:>5} uplinks, {n // 10} policies, {n // 10} rules: refuse {refuse:6.2f} s wall, "
                  f"{refuse_min:.2f} s CPU (errors {','.join(rules) or 'none'})   checks {full:6.2f} s wall, "
                  f"{full_min:.2f} s CPU ({len(errors2)} errors, accepted={topo2 is not None})", flush=True)


if __name__ == "__main__":
    main()
