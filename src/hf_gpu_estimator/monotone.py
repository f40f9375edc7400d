"""Search over a monotone predicate (true, then false), shared by the planner and the suggestions."""

from __future__ import annotations

from collections.abc import Callable


def largest_true(ok: Callable[[int], bool], low: int, high: int) -> int:
    """Largest ``x`` in ``[low, high]`` with ``ok(x)`` for a monotone (true, then false) ``ok``; ``low - 1`` if none.

    Exponential search for the first failure, then bisection: ``O(log x)`` calls of ``ok``.

    >>> largest_true(lambda x: x * x <= 50, 1, 100)
    7
    >>> largest_true(lambda x: False, 1, 100)
    0
    """
    if high < low or not ok(low):
        return low - 1
    good = low
    probe = low
    while True:  # exponential search for the first failure
        nxt = min(probe * 2, high)
        if nxt == probe:
            return good
        if not ok(nxt):
            bad = nxt
            break
        good = probe = nxt
        if good == high:
            return good
    while bad - good > 1:  # binary search between the last success and the first failure
        mid = (good + bad) // 2
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good
