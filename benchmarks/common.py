"""What every benchmark shares: the result shape, interleaved repetition, medians, child env.

Machines are shared and noisy, so no absolute time is a result. A benchmark runs its baseline and
its subject alternately in the same invocation (`interleave`), repeats the pair, and reports the
median of the per-round ratios: a noisy neighbour then slows both sides of a round alike.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "REPO_ROOT",
    "RESULTS_DIR",
    "BenchResult",
    "Figure",
    "Settings",
    "child_env",
    "interleave",
    "median_ratio",
    "multiprocessing_without_main",
    "percentile",
    "python",
    "round_ratios",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"

Verdict = Literal["met", "missed", "info", "not available", "failed"]


@dataclass(frozen=True)
class Settings:
    """How hard to push: ``quick`` is a smoke run of a few seconds, for the test suite.

    Args:
        quick: Shrink every workload to a smoke-test size.
        repeats: Interleaved rounds per comparison (overrides each benchmark's default).
    """

    quick: bool = False
    repeats: int | None = None

    def rounds(self, full: int, quick: int = 1) -> int:
        """Rounds to run: the explicit ``repeats`` if given, else ``quick`` or ``full``."""
        if self.repeats is not None:
            return self.repeats
        return quick if self.quick else full


@dataclass
class Figure:
    """One reported ratio, with the target it is judged against (if any).

    Args:
        name: What is compared, e.g. ``"events/s vs multiprocessing.Queue (100 B)"``.
        ratio: Subject over baseline, oriented as ``unit`` says.
        unit: How to read the ratio, e.g. ``"x faster"`` or ``"x the time"``.
        target: A human statement of the target, e.g. ``">= 2.0"``.
        met: Whether the target is met; None when there is no target.
        detail: Supporting numbers (medians, counts), never the result itself.
    """

    name: str
    ratio: float
    unit: str
    target: str | None = None
    met: bool | None = None
    detail: dict[str, object] = field(default_factory=dict)


@dataclass
class BenchResult:
    """Everything one benchmark reports: its figures and its correctness checks.

    Args:
        name: Short id, e.g. ``"channel"``.
        title: One line for the table.
        figures: The ratios.
        checks: Correctness facts that must hold (zero events lost, every status right).
        notes: Free text worth reading next to the figures.
        available: False when the thing measured does not exist (yet).
        error: Set when the benchmark itself broke; the run carries on with the others.
    """

    name: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    available: bool = True
    error: str | None = None

    @property
    def verdict(self) -> Verdict:
        """``met`` when every target and check holds, ``missed`` otherwise."""
        if self.error is not None:
            return "failed"
        if not self.available:
            return "not available"
        if not all(self.checks.values()) or any(f.met is False for f in self.figures):
            return "missed"
        if any(f.met is True for f in self.figures):
            return "met"
        return "info"


def interleave(
    contestants: Mapping[str, Callable[[], float]], rounds: int
) -> dict[str, list[float]]:
    """Run each contestant once per round, alternating their order, and collect the values.

    Alternating (ABAB, then BABA) keeps a slow start or a warm cache from always favouring the
    same side.
    """
    values: dict[str, list[float]] = {name: [] for name in contestants}
    names = list(contestants)
    for i in range(rounds):
        for name in names if i % 2 == 0 else reversed(names):
            values[name].append(contestants[name]())
    return values


def median_ratio(subject: Sequence[float], baseline: Sequence[float]) -> float:
    """Median of the per-round ratios ``subject[i] / baseline[i]``."""
    ratios = round_ratios(subject, baseline)
    return statistics.median(ratios) if ratios else math.nan


def round_ratios(subject: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """The per-round ratios ``subject[i] / baseline[i]``, rounds with no baseline left out."""
    return [s / b for s, b in zip(subject, baseline, strict=True) if b > 0]


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus the repository root on ``PYTHONPATH``.

    Children import their targets from ``benchmarks.workers``, which is not installed.
    """
    env = dict(os.environ)
    paths = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra or {})
    return env


def python() -> str:
    """The interpreter every child runs: this one, so children share its environment."""
    return sys.executable


@contextlib.contextmanager
def multiprocessing_without_main() -> Iterator[None]:
    """Keep the `multiprocessing` baselines' children from importing the benchmarks' main module.

    A ``spawn`` or ``forkserver`` child first imports its parent's ``__main__`` (as
    ``__mp_main__``), in case the target was defined there. Under ``python -m benchmarks.run``
    that is every benchmark, crashsight's supervisor and anyio: 0.2 s of CPU per child (measured:
    multiprocessing's forkserver took 263 ms to a first message, 200 spawned children 72 s), a
    cost of this harness that no user's worker pays and that made the baselines look slow. Every
    target lives in `benchmarks.workers`; without a spec or a file for ``__main__`` (the test
    ``multiprocessing.spawn.get_preparation_data`` makes), the children import only that.
    """
    main = sys.modules["__main__"]
    saved: dict[str, object] = {
        k: main.__dict__[k] for k in ("__spec__", "__file__") if k in main.__dict__
    }
    main.__spec__ = None
    main.__dict__.pop("__file__", None)
    try:
        yield
    finally:
        main.__dict__.update(saved)
