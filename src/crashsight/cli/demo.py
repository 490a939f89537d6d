"""``crashsight demo``: eight workers that fail in eight real ways, and the verdict on each.

Nothing is simulated on the supervisor's side: each worker is a real process that really segfaults,
really gets SIGKILL, really fills ``/dev/full``, really receives an HTTP 503 from a listener this
command runs on 127.0.0.1, or really hangs. Only the GPU and ring-socket failures, which need
hardware this machine may not have, write the exact text the real libraries print to fd 2 and then
die the way those processes die.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass

import anyio

from ..supervisor.runner import Runner
from ..supervisor.status import RunnerFailed, RunnerStatus
from ..supervisor.stop import StopPolicy
from ..supervisor.supervisor import Supervisor
from ..testing.assertions import verdict_of
from ..testing.httpd import local_http_server

__all__ = ["add_demo_parser", "run_demo"]

_TARGETS = "crashsight.testing.targets"


@dataclass(frozen=True)
class DemoCase:
    """One demo worker: its title, and the `crashsight.testing.targets` injector that fails it."""

    title: str
    expected: str
    target: str
    args: tuple[str, ...] = ()
    #: The no-progress watchdog, for the worker that hangs only: on the others it would race
    #: their start-up on a busy machine and could stop them before their own failure.
    no_progress_timeout: float | None = None


def demo_cases(http_url: str) -> list[DemoCase]:
    """The eight workers, in display order."""
    work = ("--after-events", "20", "--after-seconds", "0.5")
    return [
        DemoCase(
            "train rank 0 (MLX, Metal)",
            "gpu/timeout",
            "emit_signature",
            ("metal.gpu_timeout", "--task", "step-1200", *work),
        ),
        DemoCase(
            "train rank 1 (MLX ring)",
            "comm/ring_socket",
            "emit_signature",
            ("ring.socket_errno", "--task", "step-1200", *work),
        ),
        DemoCase("shard writer", "disk/enospc", "enospc", ("--task", "shard-0042", *work)),
        DemoCase(
            "native decoder", "crash/segfault", "segfault", ("--task", "tex/Bricks090", *work)
        ),
        DemoCase("preprocessor", "crash/killed", "sigkill", work),
        DemoCase(
            "mirror download",
            "http/server_error",
            "http_get",
            (http_url, "--task", "ambientcg/2k", *work),
        ),
        DemoCase(
            "stuck tokenizer",
            "timeout/no_progress",
            "hang",
            ("--task", "PreTokenize", "--after-events", "5"),
            no_progress_timeout=2.0,
        ),
        DemoCase("healthy shard", "succeeded", "exit", ("0", *work)),
    ]


def add_demo_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``demo``."""
    parser = subparsers.add_parser(
        "demo", help="supervise eight workers that fail in different real ways"
    )
    parser.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """Entry point of ``crashsight demo``; exits 0 when every verdict came out as expected."""
    with local_http_server() as base:
        cases = demo_cases(f"{base}/503/ambientcg/2k.tar")
        statuses = anyio.run(_supervise, cases)
    wrong = [
        f"{case.title}: expected {case.expected}, got {verdict_of(status)}"
        for case, status in zip(cases, statuses, strict=True)
        if verdict_of(status) != case.expected
    ]
    for line in wrong:
        print(f"crashsight demo: unexpected verdict for {line}", file=sys.stderr)
    return 1 if wrong else 0


async def _supervise(cases: list[DemoCase]) -> list[RunnerStatus]:
    screen = _Screen(cases)
    async with Supervisor(output="discard", stop_policy=StopPolicy(grace=1.0)) as supervisor:
        runners = [
            await supervisor.spawn(
                f"{_TARGETS}:{c.target}",
                *c.args,
                name=c.title,
                no_progress_timeout=c.no_progress_timeout,
            )
            for c in cases
        ]
        async with anyio.create_task_group() as tg:
            tg.start_soon(screen.animate, runners)
            statuses = [await r.wait() for r in runners]
            tg.cancel_scope.cancel()
    screen.final(runners)
    return statuses


class _Screen:
    """Live progress on a terminal; one line per finished worker otherwise."""

    def __init__(self, cases: list[DemoCase]) -> None:
        self.tty = sys.stdout.isatty()
        # A terminal line is cut to fit the screen; a log or pipe gets it whole.
        self.width = min(shutil.get_terminal_size().columns, 160) if self.tty else 10_000
        self.started = time.monotonic()
        self.cases = cases
        self._drawn = 0

    async def animate(self, runners: list[Runner]) -> None:
        print(f"crashsight demo: supervising {len(runners)} workers...\n")
        while self.tty:
            self._draw(runners)
            await anyio.sleep(0.1)

    def final(self, runners: list[Runner]) -> None:
        if self.tty:
            self._draw(runners)
        else:
            for runner in runners:
                print(self._line(runner))
        failed = sum(isinstance(r.status, RunnerFailed) for r in runners)
        print(
            f"\n{failed} of {len(runners)} workers failed; each verdict above came from the "
            f"worker's own channel, its stderr and its exit ({time.monotonic() - self.started:.1f} s)."
        )
        print(
            "Run one yourself:  crashsight run --report r.json -- python -c 'import os; os.abort()'"
        )

    def _draw(self, runners: list[Runner]) -> None:
        if self._drawn:
            sys.stdout.write(f"\x1b[{self._drawn}F")
        lines = [self._line(r) for r in runners]
        sys.stdout.write("".join(f"\x1b[2K{line}\n" for line in lines))
        sys.stdout.flush()
        self._drawn = len(lines)

    def _line(self, runner: Runner) -> str:
        status = runner.status
        title = f"{runner.name:<26}"
        if status is None:
            elapsed = time.monotonic() - self.started
            return f"  {_paint('…', 33, self.tty)} {title} running {elapsed:4.1f} s"
        if isinstance(status, RunnerFailed):
            verdict = verdict_of(status)
            detail = status.summary.split(": ", 1)[-1]
            tasks = status.tasks.in_flight or [t.task_id for t in status.tasks.failed]
            if tasks:
                detail = f"[{tasks[-1]}] {detail}"
            room = max(20, self.width - 48)
            return (
                f"  {_paint('✗', 31, self.tty)} {title} {_paint(f'{verdict:<19}', 1, self.tty)}"
                f" {detail[:room]}"
            )
        return (
            f"  {_paint('✓', 32, self.tty)} {title} {status.status:<19} {status.exit.description}"
        )


def _paint(text: str, code: int, on: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if on else text
