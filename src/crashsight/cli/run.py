"""``crashsight run [options] -- COMMAND [ARGS...]``: supervise one command and explain its end.

Exit status, so that crashsight can stand in for the command in scripts and CI:

=====================  =============================================
the command exited N   N
killed by signal N     128 + N (a real segfault: 139)
timeout (either kind)  124, like coreutils' ``timeout``
crashsight interrupted 130 on SIGINT, 143 on SIGTERM
could not start        127 (not found) or 126 (not executable)
bad options or files   2
=====================  =============================================
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio

from ..diagnostics.launcher import LauncherSplitter, is_torch_launcher
from ..errors import ConfigurationError, SpawnError
from ..redact import Redactor
from ..report.github import publish_to_github
from ..report.html import render_panel
from ..report.kubernetes import default_termination_log, termination_message
from ..report.model import Report
from ..report.panels import panel_from_report
from ..report.terminal import render_verdict, wants_colour
from ..report.write import check_report_path, write_report, write_text_atomically
from ..supervisor.status import RunnerFailed, RunnerStatus
from ..supervisor.stop import StopPolicy
from ..supervisor.supervisor import Supervisor

__all__ = ["add_run_parser", "exit_code_for", "run_command"]

EXIT_TIMEOUT = 124


def add_run_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``run`` and its options."""
    parser = subparsers.add_parser(
        "run",
        help="run a command under crashsight and explain how it ended",
        description="Run COMMAND, pass its output through unchanged, and say why it failed.",
    )
    parser.add_argument("--report", metavar="PATH", help="write the JSON report here (always)")
    parser.add_argument("--timeout", type=_seconds, metavar="SECONDS", help="total deadline")
    parser.add_argument(
        "--no-progress-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="stop the command after this long without output or events",
    )
    parser.add_argument(
        "--grace",
        type=_grace,
        default=5.0,
        metavar="SECONDS",
        help="time between SIGTERM and SIGKILL when stopping (default 5)",
    )
    parser.add_argument("--rules", metavar="FILE", help="TOML classification rules tried first")
    parser.add_argument("--name", help="name of this run in reports (default: the command)")
    parser.add_argument(
        "--context",
        action="append",
        type=_context_item,
        default=[],
        metavar="KEY=VALUE",
        help="attach context to the report, e.g. the shard's source URL (repeatable)",
    )
    parser.add_argument("--html", metavar="FILE", help="write the HTML error-trace panel here")
    parser.add_argument(
        "--termination-log",
        metavar="PATH",
        help="write the verdict for Kubernetes (default in a pod: /dev/termination-log)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    parser.set_defaults(handler=run_command)


def _context_item(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def _grace(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 seconds or more, got {text}")
    return value


def exit_code_for(status: RunnerStatus, received: signal.Signals | None) -> int:
    """The exit status `crashsight run` uses for ``status`` (see the module docstring)."""
    if status.status == "cancelled":
        return 128 + (received or signal.SIGTERM).value
    if isinstance(status, RunnerFailed) and status.timeout is not None:
        return EXIT_TIMEOUT
    return status.exit.shell_code


def run_command(args: argparse.Namespace) -> int:
    """Entry point of ``crashsight run``."""
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print(
            "crashsight run: no command given; usage: crashsight run [options] -- COMMAND",
            file=sys.stderr,
        )
        return 2
    try:
        sinks = _Sinks(
            report=check_report_path(args.report) if args.report else None,
            html=check_report_path(args.html) if args.html else None,
            termination_log=Path(args.termination_log) if args.termination_log else None,
            context=dict(args.context),
        )
        supervisor = Supervisor(
            stop_policy=StopPolicy(grace=args.grace),
            deadline=args.timeout,
            no_progress_timeout=args.no_progress_timeout,
            rules=args.rules,
            handle_signals=True,
        )
    except ConfigurationError as exc:
        print(f"crashsight run: {exc}", file=sys.stderr)
        return 2
    return anyio.run(_supervise, supervisor, command, args.name, sinks)


@dataclass(frozen=True)
class _Sinks:
    """Where the outcome of `crashsight run` goes besides its exit status."""

    report: Path | None
    html: Path | None
    termination_log: Path | None
    context: dict[str, str]


async def _supervise(
    supervisor: Supervisor, command: list[str], name: str | None, sinks: _Sinks
) -> int:
    redactor = Redactor()
    if sinks.context:
        described = " ".join(f"{key}={value}" for key, value in sinks.context.items())
        print(f"crashsight: context {redactor.text(described)}", file=sys.stderr)
    launcher = LauncherSplitter() if is_torch_launcher(command) else None
    try:
        async with supervisor:
            runner = await supervisor.spawn_command(
                command,
                name=name or shlex.join(command),
                inherit_stdin=True,
                stderr_sinks=[launcher] if launcher else [],
            )
            status = await runner.wait()
    except SpawnError as exc:
        print(f"crashsight run: {exc}", file=sys.stderr)
        cause = exc.__cause__
        return 127 if isinstance(cause, FileNotFoundError) else 126
    report = Report.from_status(
        status, attempts=len(runner.attempts), context=sinks.context, redactor=redactor
    )
    job = launcher.job(supervisor.classifier) if launcher else None
    if job is not None:
        report = report.with_launcher_job(job, redactor)
    _publish(report, sinks)
    return exit_code_for(status, supervisor.received_signal)


def _publish(report: Report, sinks: _Sinks) -> None:
    """Write the report everywhere it was asked for.

    Each sink is tried on its own: one that fails (its folder was removed while the command ran,
    a full disk) is named on stderr, and the others, the verdict and the exit status still stand.
    """
    writes: list[tuple[str, Callable[[], object]]] = []
    if sinks.report is not None:
        writes.append(("report", partial(write_report, report, sinks.report)))
    if sinks.html is not None:
        page = render_panel(panel_from_report(report))
        writes.append(("HTML panel", partial(write_text_atomically, page, sinks.html)))
    writes.append(("GitHub step summary", partial(publish_to_github, report)))
    termination_log = sinks.termination_log or default_termination_log()
    if termination_log is not None and report.status != "succeeded":
        message = termination_message(report)
        writes.append(("termination log", partial(termination_log.write_text, message)))
    failed = set()
    for what, write in writes:
        try:
            write()
        except OSError as exc:
            failed.add(what)
            print(f"crashsight run: could not write the {what}: {exc}", file=sys.stderr)
    if report.status != "succeeded":
        path = str(sinks.report) if sinks.report and "report" not in failed else None
        print(render_verdict(report, path, colour=wants_colour(sys.stderr)), file=sys.stderr)
