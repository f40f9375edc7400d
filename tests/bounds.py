"""Time and memory bounds for one hostile case: its wall time and how far it raises the process's RSS.

The RSS is sampled from ``/proc/self/statm`` every few milliseconds while the case runs (Linux; elsewhere
only the time is bounded), so a case that allocates a gigabyte and frees it again is still caught: the
process-wide peak (``ru_maxrss``) would hide it behind an earlier test's peak.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from hf_gpu_estimator import errors

T = TypeVar("T")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MiB = 1 << 20


def rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Tally:
    """What a suite of hostile cases did: for the closing figures (cases, crashes, hangs, peak RSS growth)."""

    cases: int = 0
    hangs: int = 0
    crashes: int = 0
    typed_errors: int = 0
    answers: int = 0
    slowest_s: float = 0.0
    peak_rss_growth_bytes: int = 0
    by_error: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (f"{self.cases} cases: {self.answers} answers, {self.typed_errors} typed errors, {self.crashes} crashes, "
                f"{self.hangs} hangs; "
                f"slowest {self.slowest_s:.2f} s, peak RSS growth {self.peak_rss_growth_bytes / MiB:.1f} MiB")


TALLY = Tally()


def bounded(call: Callable[[], T], *, seconds: float, rss_mib: float = 200) -> T | errors.EstimatorError:
    """Run a hostile case: it returns, or raises a typed one-line error, within ``seconds`` and ``rss_mib``.

    Anything else (another exception type, a multi-line message, a time or memory overrun) fails the test.
    The case runs in a daemon thread: one that hangs fails the test at its bound instead of holding the
    suite (the thread is abandoned).
    """
    base = rss_bytes()
    peak = [base or 0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            now = rss_bytes()
            if now is not None and now > peak[0]:
                peak[0] = now

    sampler = threading.Thread(target=sample, daemon=True)
    if base is not None:
        sampler.start()
    start = time.monotonic()
    outcome: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as e:  # judged in the caller's thread
            outcome.append((False, e))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    try:
        if not outcome:
            TALLY.hangs += 1
            raise AssertionError(f"hung: no answer within {seconds} s")
        ok, value = outcome[0]
        if not ok:
            raise value  # type: ignore[misc]
        result: T | errors.EstimatorError = value  # type: ignore[assignment]
        TALLY.answers += 1
    except errors.EstimatorError as e:
        text = str(e)
        assert text and "\n" not in text and len(text) < 2000, f"not one short line: {text[:300]!r}"
        TALLY.typed_errors += 1
        TALLY.by_error[type(e).__name__] = TALLY.by_error.get(type(e).__name__, 0) + 1
        result = e
    except AssertionError:
        raise
    except BaseException:
        TALLY.crashes += 1
        raise
    finally:
        elapsed = time.monotonic() - start
        done.set()
        if base is not None:
            sampler.join()
        TALLY.cases += 1
        TALLY.slowest_s = max(TALLY.slowest_s, elapsed)
        growth = peak[0] - (base or 0)
        TALLY.peak_rss_growth_bytes = max(TALLY.peak_rss_growth_bytes, growth)
    assert elapsed < seconds, f"took {elapsed:.1f} s (bound {seconds} s)"
    assert growth < rss_mib * MiB, f"RSS grew {growth / MiB:.0f} MiB (bound {rss_mib} MiB)"
    return result
