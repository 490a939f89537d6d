"""The ``crashsight`` command: one sub-command per job."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from .startup import StartupSignals

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered.

    The sub-commands are imported here, not at the top: `main` records start-up signals before
    this (slow) import, so that ``crashsight run`` interrupted early still writes its report.
    """
    from .aggregate import add_aggregate_parser
    from .analyze import add_analyze_parser
    from .demo import add_demo_parser
    from .run import add_run_parser
    from .schema import add_schema_parser
    from .serve import add_serve_parser

    parser = argparse.ArgumentParser(
        prog="crashsight",
        description="Supervise worker processes and say, in one line, why a worker died.",
    )
    subparsers = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)
    add_run_parser(subparsers)
    add_analyze_parser(subparsers)
    add_demo_parser(subparsers)
    add_aggregate_parser(subparsers)
    add_schema_parser(subparsers)
    add_serve_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``argv`` and exit with the sub-command's status.

    A closed stdout (``crashsight demo | head``) and Ctrl-C end the command quietly with the
    status a shell expects (141, 130), not a traceback.
    """
    startup = StartupSignals.install()
    try:
        args = build_parser().parse_args(argv)
        if args.subcommand == "run":
            args.startup_signals = startup
        else:
            startup.restore(redeliver=True)
        code = args.handler(args)
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 128 + signal.SIGPIPE
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    finally:
        startup.restore(redeliver=False)
    sys.exit(code)
