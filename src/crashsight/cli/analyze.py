"""``crashsight analyze [options] LOGFILE``: explain the errors of a training log after the fact.

For failures that left only a log file behind: the errors, deduplicated by phase and message, the
last traceback, and a verdict in the phase where it happened, with the same catalogue and rules as
``crashsight run`` (see `crashsight.diagnostics.analysis` for the JSON schema).

Output: a human summary on stdout, or with ``--format json`` the JSON result; ``--output FILE``
also writes the JSON result to FILE (atomically), whatever ``--format`` says. The message about an
unusable file goes to stderr (and only there in text format, where it would be the summary).

Exit status:

=====================================  ==
analysed, no errors found              0
analysed, errors found                 1
unusable input: missing, unreadable,   2
empty or binary file; bad options
=====================================  ==
"""

from __future__ import annotations

import argparse
import sys

from ..diagnostics.analysis import analyze_file
from ..diagnostics.analysis_model import AnalyzeResult
from ..diagnostics.rules import load_rules
from ..errors import ConfigurationError
from ..report.analysis_text import render_text
from ..report.html import render_panel
from ..report.panels import panel_from_analysis
from ..report.write import check_report_path, write_text_atomically

__all__ = ["add_analyze_parser", "analyze_command", "exit_status", "positive_int"]


def add_analyze_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``analyze`` and its options."""
    parser = subparsers.add_parser(
        "analyze",
        help="explain the errors in a training log file",
        description="Read LOGFILE (streamed; any size) and explain its errors: deduplicated by "
        "phase and message, with the last traceback and a phase-aware verdict.",
    )
    parser.add_argument("logfile", metavar="LOGFILE", help="the log file to analyse")
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="what to print on stdout (default: text)",
    )
    parser.add_argument("--output", metavar="FILE", help="also write the JSON result here")
    parser.add_argument("--html", metavar="FILE", help="also write the HTML panel here")
    parser.add_argument("--rules", metavar="FILE", help="TOML classification rules tried first")
    parser.add_argument(
        "--max-errors",
        type=positive_int,
        default=500,
        metavar="N",
        help="distinct errors listed; more are only counted (default 500)",
    )
    parser.set_defaults(handler=analyze_command)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def exit_status(result: AnalyzeResult) -> int:
    """The exit status for ``result`` (see the module docstring)."""
    return {"clean": 0, "errors": 1}.get(result.status, 2)


def analyze_command(args: argparse.Namespace) -> int:
    """Entry point of ``crashsight analyze``."""
    try:
        output = check_report_path(args.output) if args.output else None
        html = check_report_path(args.html) if args.html else None
        rules = load_rules(args.rules) if args.rules else []
    except ConfigurationError as exc:
        print(f"crashsight analyze: {exc}", file=sys.stderr)
        return 2
    result = analyze_file(args.logfile, rules=rules, max_errors=args.max_errors)
    text = result.model_dump_json(indent=2) + "\n"
    if output is not None:
        write_text_atomically(text, output)
    if html is not None:
        page = render_panel(panel_from_analysis(result, render_text(result)))
        write_text_atomically(page, html)
    if args.format == "json":
        sys.stdout.write(text)
    if exit_status(result) == 2:
        # Said once, on stderr: the text summary of unusable input is this very message.
        print(f"crashsight analyze: {result.message}", file=sys.stderr)
    elif args.format != "json":
        sys.stdout.write(render_text(result) + "\n")
    return exit_status(result)
