"""Benchmark 8: what ``@supervised`` costs a Ray task, and how that cost amortises.

A plain Ray task and the same task under ``crashsight.ray.supervised`` run side by side on one
local cluster (2 CPUs): each round submits both at once and times each from submission to its
result, for bodies that sleep 0 s, 0.1 s, 1 s and 5 s (together, not one after the other: the
5 s rows alone took a minute). Each figure is the median per-round ratio of those wall times,
supervised over plain: the fixed cost of a supervised call (a runner process, pickling the call
and its result through files) shows as a large ratio for an empty body and fades as the body
gets longer. Sleeping bodies keep the measurement about the overhead, not about CPU contention
with the neighbours.

Needs Ray (the ``ray`` extra) and is skipped in ``--quick`` smoke runs: starting a cluster takes
longer than a whole smoke run.
"""

from __future__ import annotations

import statistics
import time
import warnings
from typing import Any

from crashsight.ray import supervised

from .common import BenchResult, Figure, Settings, median_ratio

__all__ = ["run"]

#: Task bodies: seconds each sleeps. The longest has a target: a supervised task of a few
#: seconds should cost at most a fifth more than a plain one.
_LENGTHS_S = (0.0, 0.1, 1.0, 5.0)
_TARGET_LENGTH_S = 5.0
_TARGET_RATIO = 1.2
#: A supervised call is refused past this (the bench never comes near it).
_GET_TIMEOUT_S = 300


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


# Decorated the way users write it: the body is then pickled by value to the runner, which does
# not import this module (wrapping `_sleep` itself would make every runner import it).
@supervised()
def _supervised_sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _side_by_side(
    ray: Any, tasks: dict[str, Any], seconds: float, rounds: int
) -> dict[str, list[float]]:
    """Per round, each task's seconds from submission to result, all submitted at once."""
    values: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(rounds):
        start = time.perf_counter()
        pending = {task.remote(seconds): name for name, task in tasks.items()}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=_GET_TIMEOUT_S)
            if not ready:
                raise TimeoutError(f"no Ray task of {seconds:g} s ended in {_GET_TIMEOUT_S} s")
            ray.get(ready[0])
            values[pending.pop(ready[0])].append(time.perf_counter() - start)
    return values


def run(settings: Settings) -> BenchResult:
    """Compare supervised and plain Ray tasks over body lengths; see the module docstring."""
    result = BenchResult("ray", "Supervised Ray task vs plain Ray task")
    if settings.quick:
        result.available = False
        result.notes.append("skipped in --quick: starting a Ray cluster outlasts a smoke run")
        return result
    try:
        import ray
    except ImportError:
        result.available = False
        result.notes.append("Ray is not installed: pip install 'crashsight[ray]'")
        return result
    rounds = settings.rounds(full=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        plain = ray.remote(_sleep)
        watched = ray.remote(_supervised_sleep)
        for task in (plain, watched):  # warm up: workers started, imports done
            ray.get(task.remote(0.0), timeout=_GET_TIMEOUT_S)
        for seconds in _LENGTHS_S:
            values = _side_by_side(ray, {"plain": plain, "supervised": watched}, seconds, rounds)
            ratio = median_ratio(values["supervised"], values["plain"])
            medians = {name: statistics.median(v) for name, v in values.items()}
            detail: dict[str, object] = {
                "rounds": rounds,
                **{f"median_ms_{name}": round(v * 1e3, 1) for name, v in medians.items()},
                "overhead_ms": round((medians["supervised"] - medians["plain"]) * 1e3, 1),
            }
            target = f"<= {_TARGET_RATIO}" if seconds == _TARGET_LENGTH_S else None
            result.figures.append(
                Figure(
                    f"supervised vs plain Ray task wall time ({seconds:g} s body)",
                    ratio,
                    "x the time",
                    target,
                    None if target is None else ratio <= _TARGET_RATIO,
                    detail,
                )
            )
    finally:
        ray.shutdown()
    return result
