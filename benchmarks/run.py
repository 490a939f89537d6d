"""``python -m benchmarks.run [--quick] [--only NAME ...]``: run the benchmarks, print, save JSON.

Every figure is a ratio against a baseline measured side by side in the same invocation (see
`benchmarks.common`). The table goes to stdout; the full results, with the supporting medians, to
``benchmarks/results/latest.json`` (or ``--output``). A benchmark that breaks is reported as
``failed`` and the others still run; the exit status is 1 if any failed, so a smoke run catches a
broken harness, while a missed target never fails the command.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from . import (
    bench_aggregate,
    bench_analyze,
    bench_channel,
    bench_collector,
    bench_failure,
    bench_flood,
    bench_ray,
    bench_scale,
    bench_spawn,
    bench_stacks,
)
from .common import RESULTS_DIR, BenchResult, Settings, multiprocessing_without_main

__all__ = ["BENCHMARKS", "main", "render_table"]

#: In the order of issue 6; ``analyze`` last because the sub-command is the newest.
BENCHMARKS: dict[str, Callable[[Settings], BenchResult]] = {
    "channel": bench_channel.run,
    "failure": bench_failure.run,
    "collector": bench_collector.run,
    "flood": bench_flood.run,
    "spawn": bench_spawn.run,
    "scale": bench_scale.run,
    "analyze": bench_analyze.run,
    "stacks": bench_stacks.run,
    "ray": bench_ray.run,
    "aggregate": bench_aggregate.run,
}


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def render_table(results: Sequence[BenchResult]) -> str:
    """A Markdown table of every figure: benchmark, comparison, ratio, target, verdict."""
    rows = ["| benchmark | figure | ratio | target | verdict |", "| --- | --- | --- | --- | --- |"]
    for result in results:
        if not result.figures:
            reason = result.error or "; ".join(result.notes) or result.verdict
            rows.append(f"| {result.name} | {result.title} | - | - | {result.verdict}: {reason} |")
        for fig in result.figures:
            verdict = "-" if fig.met is None else ("met" if fig.met else "**missed**")
            rows.append(
                f"| {result.name} | {fig.name} | {_fmt(fig.ratio)} {fig.unit} | {fig.target or '-'} | {verdict} |"
            )
        for check, ok in result.checks.items():
            rows.append(
                f"| {result.name} | check: {check} | - | must hold | {'ok' if ok else '**FAILED**'} |"
            )
    return "\n".join(rows)


def _run_one(name: str, settings: Settings) -> BenchResult:
    start = time.perf_counter()
    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
    try:
        result = BENCHMARKS[name](settings)
    except Exception as exc:
        traceback.print_exc()
        result = BenchResult(name, name, error=f"{type(exc).__name__}: {exc}")
    print(
        f"[bench] {name}: {result.verdict} ({time.perf_counter() - start:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected benchmarks; return 1 if one of them broke, else 0."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run of a few seconds")
    parser.add_argument("--repeats", type=int, help="interleaved rounds per comparison")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "latest.json")
    args = parser.parse_args(argv)
    settings = Settings(quick=args.quick, repeats=args.repeats)
    started = datetime.now(UTC)
    with multiprocessing_without_main():
        results = [_run_one(name, settings) for name in args.only or BENCHMARKS]
    table = render_table(results)
    print(table)
    document = {
        "started_at": started.isoformat(),
        "quick": settings.quick,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "benchmarks": [{**asdict(r), "verdict": r.verdict} for r in results],
        "table": table,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"\nresults written to {args.output}", file=sys.stderr)
    return 1 if any(r.error is not None for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
