"""Seeded mutation fuzz of every example topology: how many mutants were refused (with a
location and rule id), accepted (then compiled, rendered and parsed back byte for byte), and
how many ended in an internal error (must be 0). See tests/topology_fuzz.py for the mutations.

Run: python bench/fuzz.py [mutants per example, default 3400] [seed, default 20261201]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from topology_fuzz import EXAMPLES, fuzz  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("per", nargs="?", type=int, default=3400, help="mutants per example")
    ap.add_argument("seed", nargs="?", type=int, default=20261201)
    args = ap.parse_args()
    per, seed = args.per, args.seed
    t0, c0 = time.perf_counter(), time.process_time()
    tally = fuzz(per, seed)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"{len(EXAMPLES)} examples x {per} mutants (seed {seed}): {tally.total} mutants, "
          f"{tally.refused} refused, {tally.accepted} accepted, {tally.internal} internal errors")
    print(f"{wall:.0f} s wall, {cpu:.0f} s CPU ({1000 * cpu / max(1, tally.total):.1f} ms CPU per mutant)")
    for e in tally.examples:
        print("----- internal error\n" + e)
    return 1 if tally.internal else 0


if __name__ == "__main__":
    sys.exit(main())
