"""A small seeded run of the topology fuzz (bench/fuzz.py runs 20,000+): no mutant of any
example may end in an internal error, and the mutations must reach both outcomes."""

from __future__ import annotations

from topology_fuzz import EXAMPLES, fuzz


def test_mutants_of_every_example_end_refused_or_accepted_never_internal() -> None:
    tally = fuzz(40, seed=9)
    assert tally.total == 40 * len(EXAMPLES)
    assert tally.internal == 0, "\n\n".join(tally.examples)
    # both outcomes occur, or the mutations would not be exercising anything
    assert tally.refused > tally.total // 4 and tally.accepted > 0, (tally.refused, tally.accepted)
