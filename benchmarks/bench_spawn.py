"""Benchmark 5: spawn cost, and what importing the runner costs inside every worker.

Spawn: from ``Supervisor.spawn`` to the runner's `Ready` event, against the wall time of
``subprocess.run([python, "-c", "pass"])`` (the target's own bar), and against
``python -c "import crashsight.runner.bootstrap"`` (which leaves only the supervisor's own overhead).

Import: ``python -c "import crashsight.runner.bootstrap"`` against ``python -c pass``, interleaved;
the extra milliseconds are the difference of the medians of the same invocation. ``-X importtime``
names the biggest contributors in the notes.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import time
from functools import partial

import anyio

from crashsight import Supervisor
from crashsight.protocol import Ready

from .common import BenchResult, Figure, Settings, child_env, interleave, median_ratio, python

__all__ = ["run"]

_IMPORT = "import crashsight.runner.bootstrap"


def _to_ready() -> float:
    """Seconds from `Supervisor.spawn` to the `Ready` event of a runner that does nothing."""

    async def main() -> float:
        async with Supervisor(output="discard") as supervisor:
            start = time.perf_counter()
            worker = await supervisor.spawn("benchmarks.workers:payload_of", env=child_env())
            async for event in worker.events():
                if isinstance(event, Ready):
                    elapsed = time.perf_counter() - start
                    await worker.wait()
                    return elapsed
        raise AssertionError("the runner never sent Ready")

    return anyio.run(main)


def _python(code: str) -> float:
    """Wall seconds of ``python -c CODE`` started with `subprocess`."""
    start = time.perf_counter()
    subprocess.run([python(), "-c", code], check=True, env=child_env())
    return time.perf_counter() - start


def _importtime_top(n: int = 6) -> list[str]:
    """The ``n`` modules with the largest self time under ``-X importtime``."""
    out = subprocess.run(
        [python(), "-X", "importtime", "-c", _IMPORT],
        capture_output=True,
        text=True,
        check=True,
        env=child_env(),
    ).stderr
    rows = []
    for line in out.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S.*)$", line)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    total = next((cum for _, cum, name in rows if name == "crashsight.runner.bootstrap"), 0)
    top = sorted(rows, reverse=True)[:n]
    return [f"cumulative {total / 1e3:.1f} ms"] + [
        f"{name} {own / 1e3:.1f} ms self" for own, _, name in top
    ]


def run(settings: Settings) -> BenchResult:
    """Compare spawn-to-Ready and import cost; see the module docstring."""
    rounds = settings.rounds(full=30, quick=3)
    result = BenchResult("spawn", "Spawn to Ready, and importing the runner in a worker")
    values = interleave(
        {
            "ready": _to_ready,
            "pass": partial(_python, "pass"),
            "import": partial(_python, _IMPORT),
        },
        rounds,
    )
    medians = {k: statistics.median(v) for k, v in values.items()}
    detail: dict[str, object] = {
        "rounds": rounds,
        **{f"median_ms_{k}": round(v * 1e3, 1) for k, v in medians.items()},
    }
    vs_pass = median_ratio(values["ready"], values["pass"])
    result.figures.append(
        Figure(
            "spawn -> Ready vs subprocess python -c pass",
            vs_pass,
            "x the time",
            "<= 1.3",
            vs_pass <= 1.3,
            detail,
        )
    )
    result.figures.append(
        Figure(
            "spawn -> Ready vs subprocess python -c 'import crashsight.runner.bootstrap'",
            median_ratio(values["ready"], values["import"]),
            "x the time",
            detail=detail,
        )
    )
    extra_ms = (medians["import"] - medians["pass"]) * 1e3
    result.figures.append(
        Figure(
            "import crashsight.runner.bootstrap vs python -c pass",
            median_ratio(values["import"], values["pass"]),
            "x the time",
            "<= 30 ms extra",
            extra_ms <= 30,
            {**detail, "extra_ms": round(extra_ms, 1)},
        )
    )
    result.notes.append("-X importtime: " + "; ".join(_importtime_top()))
    return result
