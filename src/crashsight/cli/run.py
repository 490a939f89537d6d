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
import os
import shlex
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import anyio

from ..diagnostics.jobverdict import peers_named
from ..diagnostics.launcher import LauncherSplitter, is_torch_launcher
from ..errors import ConfigurationError, SpawnError
from ..redact import Redactor
from ..report.github import publish_to_github
from ..report.html import render_panel
from ..report.kubernetes import default_termination_log, termination_message
from ..report.model import Report
from ..report.panels import panel_from_report
from ..report.pathtemplate import expand_path
from ..report.terminal import render_verdict, wants_colour
from ..report.torchelastic import ERROR_FILE_ENV, write_error_file
from ..report.write import check_report_path, write_report, write_text_atomically
from ..supervisor.identity import IDENTITY_ENV, identity_from_env
from ..supervisor.snapshot import StackOptions, parse_dump_signal
from ..supervisor.status import ExitInfo, RunnerCancelled, RunnerFailed, RunnerStatus
from ..supervisor.stop import StopPolicy
from ..supervisor.supervisor import SpawnOptions, Supervisor
from ..supervisor.timeline import first_error_at
from .analyze import positive_int
from .startup import StartupSignals

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
    stacks = parser.add_argument_group("stacks at a stop")
    stacks.add_argument(
        "--dump-signal",
        type=_dump_signal,
        default=signal.SIGUSR2,
        metavar="SIGNAL",
        help="signal that asks the Python processes for their stacks before a stop "
        "(default SIGUSR2)",
    )
    stacks.add_argument(
        "--stack-wait",
        type=_grace,
        default=1.0,
        metavar="SECONDS",
        help="how long to wait for the stacks before stopping anyway (default 1)",
    )
    stacks.add_argument(
        "--native-stacks",
        action="store_true",
        help="add native (C/C++) frames with py-spy (pip install 'crashsight[stacks]')",
    )
    stacks.add_argument(
        "--no-stacks", action="store_true", help="take no stacks and no process tree at a stop"
    )
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
    parser.add_argument(
        "--preload",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE once in a fork server and fork the runner from it (repeatable); "
        "COMMAND is then a Python target: module:function or file.py:function, and its ARGS",
    )
    parser.add_argument(
        "--rank",
        type=_rank_number,
        metavar="N",
        help="this process's rank in a distributed job (default: from RANK, "
        "OMPI_COMM_WORLD_RANK or SLURM_PROCID)",
    )
    parser.add_argument("--local-rank", type=_rank_number, metavar="N", help="rank on this host")
    parser.add_argument(
        "--world-size", type=_rank_number, metavar="N", help="number of ranks in the job"
    )
    parser.add_argument(
        "--cgroup",
        choices=("auto", "off", "required"),
        default="auto",
        help="a cgroup per runner, so nothing it starts escapes the stop: auto (where writable, "
        "the default), required (fail where not), off (process groups only)",
    )
    parser.add_argument(
        "--memory-max",
        type=_bytes,
        metavar="SIZE",
        help="memory limit of the command's whole process tree, e.g. 512M or 2G (needs a cgroup)",
    )
    parser.add_argument(
        "--pids-max",
        type=positive_int,
        metavar="N",
        help="limit on processes and threads in the command's tree (needs a cgroup)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    parser.set_defaults(handler=run_command)


def _context_item(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _dump_signal(text: str) -> signal.Signals:
    try:
        return parse_dump_signal(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rank_number(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a number 0 or more, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


_SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _bytes(text: str) -> int:
    """``512M`` -> 536870912; plain numbers are bytes, K/M/G/T are powers of 1024."""
    number, unit = text.strip().rstrip("iBb"), ""
    if number[-1:].upper() in _SIZE_UNITS:
        number, unit = number[:-1], number[-1].upper()
    try:
        value = int(float(number) * _SIZE_UNITS[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size such as 512M or 2G") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be more than 0 bytes, got {text}")
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
    if args.preload and ":" not in command[0]:
        print(
            "crashsight run: --preload forks a Python target from the fork server; give "
            f"module:function or file.py:function, not {command[0]!r}",
            file=sys.stderr,
        )
        return 2
    try:
        env = _identity_env(args)
        paths = _paths(args, env)
        sinks = _Sinks(
            report=check_report_path(paths["--report"]) if args.report else None,
            html=check_report_path(paths["--html"]) if args.html else None,
            termination_log=Path(paths["--termination-log"]) if args.termination_log else None,
            context=dict(args.context),
            error_file=Path(os.environ[ERROR_FILE_ENV]) if os.environ.get(ERROR_FILE_ENV) else None,
        )
        supervisor = Supervisor(
            stop_policy=StopPolicy(grace=args.grace),
            deadline=args.timeout,
            no_progress_timeout=args.no_progress_timeout,
            rules=args.rules,
            handle_signals=True,
            stacks=None
            if args.no_stacks
            else StackOptions(args.dump_signal, wait=args.stack_wait, native=args.native_stacks),
            cgroup=args.cgroup,
            memory_max=args.memory_max,
            pids_max=args.pids_max,
            preload=args.preload,
        )
    except ConfigurationError as exc:
        print(f"crashsight run: {exc}", file=sys.stderr)
        return 2
    startup: StartupSignals = getattr(args, "startup_signals", None) or StartupSignals()
    name = args.name or shlex.join(command)
    if startup.received is not None:
        return _never_started(startup.received, command, name, sinks)
    return anyio.run(_supervise, supervisor, command, name, sinks, startup, env)


def _identity_env(args: argparse.Namespace) -> dict[str, str] | None:
    """The runner's environment with ``--rank``/``--local-rank``/``--world-size``, if given.

    They travel as crashsight's own variables, so the worker's RANK and friends are untouched.

    Raises:
        ConfigurationError: ``--local-rank``/``--world-size`` without ``--rank``, or a rank
            that is not below the world size.
    """
    given = {
        IDENTITY_ENV.rank: args.rank,
        IDENTITY_ENV.local_rank: args.local_rank,
        IDENTITY_ENV.world_size: args.world_size,
    }
    if all(value is None for value in given.values()):
        return None
    if args.rank is None:
        raise ConfigurationError("--local-rank and --world-size need --rank")
    if args.world_size is not None and args.rank >= args.world_size:
        raise ConfigurationError(f"--rank {args.rank} is not below --world-size {args.world_size}")
    return {**os.environ, **{name: str(v) for name, v in given.items() if v is not None}}


def _paths(args: argparse.Namespace, env: dict[str, str] | None) -> dict[str, str]:
    """Every path option with ``{rank}``, ``{local_rank}``, ``{host}``, ``{pid}`` filled in.

    Raises:
        ConfigurationError: a bad or unknown placeholder (see `expand_path`).
    """
    identity = identity_from_env(env if env is not None else os.environ)
    values = {
        "rank": identity.rank,
        "local_rank": identity.local_rank,
        "host": identity.host or socket.gethostname(),
        "pid": os.getpid(),
    }
    options = {
        "--report": args.report,
        "--html": args.html,
        "--termination-log": args.termination_log,
    }
    return {
        option: expand_path(option, template, values)
        for option, template in options.items()
        if template
    }


@dataclass(frozen=True)
class _Sinks:
    """Where the outcome of `crashsight run` goes besides its exit status."""

    report: Path | None
    html: Path | None
    termination_log: Path | None
    context: dict[str, str]
    error_file: Path | None = None


async def _supervise(
    supervisor: Supervisor,
    command: list[str],
    name: str,
    sinks: _Sinks,
    startup: StartupSignals,
    env: dict[str, str] | None = None,
) -> int:
    redactor = Redactor()
    if sinks.context:
        described = " ".join(f"{key}={value}" for key, value in sinks.context.items())
        print(f"crashsight: context {redactor.text(described)}", file=sys.stderr)
    launcher = LauncherSplitter() if is_torch_launcher(command) else None
    try:
        async with supervisor:
            # From here the supervisor's own handlers listen; a signal before them was recorded.
            # No await between this check and the spawn: a later signal stops the runner.
            early = startup.received or supervisor.received_signal
            if early is not None:
                return _never_started(early, command, name, sinks)
            options: SpawnOptions = {"name": name, "inherit_stdin": True}
            if env is not None:
                options["env"] = env
            if launcher is not None:
                options["stderr_sinks"] = [launcher]
            if supervisor.preload:
                runner = await supervisor.spawn(*command, **options)
            else:
                runner = await supervisor.spawn_command(command, **options)
            status = await runner.wait()
    except SpawnError as exc:
        print(f"crashsight run: {exc}", file=sys.stderr)
        cause = exc.__cause__
        return 127 if isinstance(cause, FileNotFoundError) else 126
    report = Report.from_status(
        status, attempts=len(runner.attempts), context=sinks.context, redactor=redactor
    )
    if status.status == "cancelled" and supervisor.received_signal is not None:
        report = _stopped_by_launcher(report)
    job = launcher.job(supervisor.classifier) if launcher else None
    if job is not None:
        report = report.with_launcher_job(job, redactor)
    _publish(report, sinks)
    return exit_code_for(status, supervisor.received_signal)


def _stopped_by_launcher(report: Report) -> Report:
    """The role of a run whose crashsight was signalled: what a launcher does to the survivors.

    torchrun, srun and mpirun stop the other ranks by signalling the process they started, which
    is crashsight. The rank is collateral of another's failure, or a consequence when it had
    already hit a comm error of its own (the catalogue's consequence entries) before the signal.
    """
    hit = [d for d in report.diagnostics if d.role == "consequence" and not d.evidence_only]
    return report.model_copy(
        update={
            "role": "consequence" if hit else "collateral",
            "category": hit[0].category if hit else None,
            "subcategory": hit[0].subcategory if hit else None,
            "summary": (
                f"{hit[0].category}/{hit[0].subcategory}: {hit[0].first_line.strip()[:300]}; "
                f"then {report.summary}"
                if hit
                else report.summary
            ),
            "first_error_at": first_error_at(report.diagnostics, report.ended_at),
            "blamed_peers": peers_named(report.diagnostics),
        }
    )


def _never_started(received: signal.Signals, command: list[str], name: str, sinks: _Sinks) -> int:
    """Interrupted before the command started: a cancelled report, and the usual 128+N."""
    status = RunnerCancelled(
        runner_id="",
        name=name,
        pid=0,
        command=command,
        exit=ExitInfo(code=None, description="never started"),
        started_at=datetime.now(UTC),
        duration_s=0.0,
        reason=f"crashsight received {received.name} during start-up; the command never started",
    )
    _publish(Report.from_status(status, context=sinks.context), sinks)
    return 128 + received.value


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
    if sinks.error_file is not None and report.status != "succeeded":
        writes.append(("torchrun error file", partial(write_error_file, report, sinks.error_file)))
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
