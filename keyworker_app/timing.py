"""Timing a piece of work on a machine that may be busy."""

from __future__ import annotations

from typing import Callable


def fastest_run(work: Callable[[], object], runs: int, clock: Callable[[], float]) -> float:
    """The shortest of ``runs`` timings of ``work``: a busy moment (another program, the
    first touch of fresh memory) only ever makes a run look slower."""
    best = float("inf")
    for _ in range(runs):
        start = clock()
        work()
        best = min(best, clock() - start)
    return best
