"""``crashsight analyze [options] LOGFILE``: explain the errors of a training log after the fact.

For failures that left only a log file behind: the errors, deduplicated by phase and message, the
last traceback, and a verdict in the phase where it happened, with the same catalogue and rules as
``crashsight run`` (see `crashsight.diagnostics.analysis` for the JSON schema).

Output: a human summary on stdout, or with ``--format json`` the JSON result; ``--output FILE``
also writes the JSON result to FILE (atomically), whatever ``--format`` says. Messages about an
unusable file go to stderr as well.

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

from ..diagnostics.analysis import AnalyzeResult, analyze_file
from ..diagnostics.rules import load_rules
from ..errors import ConfigurationError
from ..report.html import render_panel
from ..report.panels import panel_from_analysis
from ..report.write import check_report_path, write_text_atomically

__all__ = ["add_analyze_parser", "analyze_command", "exit_status", "positive_int", "render_text"]

_MAX_ROWS_SHOWN = 20


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
    if exit_status(result) == 2:
        print(f"crashsight analyze: {result.message}", file=sys.stderr)
    sys.stdout.write(text if args.format == "json" else render_text(result) + "\n")
    return exit_status(result)


def render_text(result: AnalyzeResult) -> str:
    """Render a result as a few plain lines an operator can read at a glance.

    Example::

        crashsight analyze: train.log: 48 errors (2 distinct) in 120000 lines; gpu/oom ...
          verdict:     gpu/oom during phase 'EVAL' (eval), confidence 0.9
          description: PyTorch's CUDA caching allocator could not satisfy an allocation. ...
          suggestion:  Lower the evaluation batch size ...
          errors:
            x47  PreTokenize  ERROR  Failed to tokenize <path> at line <n>
                 lines 12-3400, 2025-12-10T03:58:22 .. 2025-12-10T04:01:10
    """
    lines = [f"crashsight analyze: {result.message}"]
    if not result.message.startswith(result.file):
        lines[0] = f"crashsight analyze: {result.file}: {result.message}"
    analysis = result.analysis
    if analysis is not None:
        verdict = "/".join(filter(None, (analysis.category, analysis.subcategory)))
        where = f" during phase {analysis.phase!r}" if analysis.phase else ""
        kind = (
            f" ({analysis.phase_kind})"
            if analysis.phase_kind and analysis.phase_kind != analysis.phase
            else ""
        )
        lines.append(f"  verdict:     {verdict}{where}{kind}, confidence {analysis.confidence}")
        lines.append(f"  description: {_first_line(analysis.description)}")
        lines.append(f"  confidence:  {'; '.join(analysis.confidence_basis)}")
        lines += [f"  suggestion:  {suggestion}" for suggestion in analysis.suggestions]
    traceback = result.traceback
    if traceback is not None and traceback.exception is not None:
        chain = " <- ".join(
            f"{link.type}: {_first_line(link.message)}"[:120] for link in traceback.chain
        )
        lines.append(f"  traceback:   line {traceback.lineno}: {chain}")
        if traceback.exception.frames:
            frame = traceback.exception.frames[-1]
            lines.append(f"  failed in:   {frame.file}:{frame.line} in {frame.function}")
    if result.errors:
        lines.append("  errors:")
    for row in result.errors[:_MAX_ROWS_SHOWN]:
        fields = [f"x{row.count}", row.phase or "-", row.level or "-", row.template[:140]]
        lines.append("    " + "  ".join(fields))
        when = f", {row.first_time} .. {row.last_time}" if row.first_time else ""
        lines.append(f"         lines {row.first_lineno}-{row.last_lineno}{when}")
    if len(result.errors) > _MAX_ROWS_SHOWN:
        more = len(result.errors) - _MAX_ROWS_SHOWN
        lines.append(f"    ... {more} more distinct errors (--format json lists them)")
    lines += [f"  note:        {note}" for note in result.notes]
    return "\n".join(lines)


def _first_line(text: str) -> str:
    """A multi-line message (an XLA memory report, a torchrun banner) shown as its first line."""
    lines = text.strip().splitlines()
    return lines[0] + (" ..." if len(lines) > 1 else "") if lines else ""
