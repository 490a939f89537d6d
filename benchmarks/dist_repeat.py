"""Run every real distributed-job scenario many times and compare crashsight's pick with torchrun's.

``.venv/bin/python -m benchmarks.dist_repeat`` (needs torch: ``.venv/bin/pip install
torch==2.13.0``) runs each scenario of ``tests/torch/dist_worker.py`` (one rank of three dies by
the allocator's out-of-memory error, a segfault, ENOSPC, or hangs before a collective) each way
crashsight explains a job (per-rank reports + ``aggregate``, the launcher wrapped whole, the
library group), ``--repeats`` times, one job at a time, and prints a markdown table: how often
crashsight named the rank that really failed with the right verdict, beside how often torchrun's
"Root Cause (first observed failure)" named it on the same runs. Not part of ``make bench``: it
takes about half an hour on two cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

import anyio
from tests.torch.jobs import EXPECTED, MODES, VICTIM, JobResult, run_group, run_torchrun


def run_once(mode: str, scenario: str, workdir: Path) -> JobResult:
    """One job of ``scenario``, watched the ``mode`` way."""
    if mode == "group":
        return anyio.run(run_group, scenario)
    (result,) = run_torchrun(
        scenario, workdir, per_rank=mode == "per-rank", wrapped=mode == "launcher"
    )
    return result


def table(results: list[JobResult]) -> str:
    """The markdown table: one row per scenario and way."""
    lines = [
        "| scenario | watched as | crashsight right | crashsight's picks | "
        "torchrun's Root Cause right | torchrun's picks | median s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for scenario in EXPECTED:
        for mode in MODES:
            runs = [r for r in results if r.scenario == scenario and r.mode == mode]
            if not runs:
                continue
            picks = Counter(
                f"rank {r.rank} {r.category}/{r.subcategory}" if r.rank is not None else "none"
                for r in runs
            )
            right = sum(r.right for r in runs)
            if mode == "group":
                theirs, their_picks = "-", "(no torchrun)"
            else:
                torchrun = Counter(r.torchrun_rank for r in runs)
                theirs = f"{torchrun[VICTIM]}/{len(runs)}"
                their_picks = ", ".join(f"rank {k} x{n}" for k, n in torchrun.most_common())
            mine = ", ".join(f"{k} x{n}" for k, n in picks.most_common())
            seconds = sorted(r.seconds for r in runs)[len(runs) // 2]
            lines.append(
                f"| {scenario} | {mode} | {right}/{len(runs)} | {mine} | {theirs} | "
                f"{their_picks} | {seconds:.1f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the repetitions, print the table; exit 1 if crashsight missed once."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--scenarios", nargs="+", choices=list(EXPECTED), default=list(EXPECTED))
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--output", type=Path, help="also write every run as JSON here")
    args = parser.parse_args(argv)
    results: list[JobResult] = []
    with tempfile.TemporaryDirectory(prefix="dist-repeat-") as tmp:
        for repeat in range(args.repeats):
            for scenario in args.scenarios:
                for mode in args.modes:
                    result = run_once(mode, scenario, Path(tmp))
                    results.append(result)
                    mark = "ok  " if result.right else "MISS"
                    print(
                        f"{mark} #{repeat + 1} {scenario:8} {mode:8} rank {result.rank} "
                        f"{result.category}/{result.subcategory} (torchrun: rank "
                        f"{result.torchrun_rank}) {result.seconds:.1f}s",
                        file=sys.stderr,
                        flush=True,
                    )
    if args.output:
        args.output.write_text(json.dumps([r.__dict__ for r in results], indent=1))
    print(table(results))
    return 0 if all(r.right for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
