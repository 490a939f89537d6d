"""``crashsight aggregate REPORT.json...``: one verdict for many shards, or many ranks of one job."""

from __future__ import annotations

import argparse
import sys

from ..report.aggregate import aggregate, load_shard
from ..report.aggregate_text import render_text
from ..report.html import render_panel
from ..report.panels import panel_from_aggregate
from ..report.write import write_text_atomically

__all__ = ["add_aggregate_parser"]


def add_aggregate_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``aggregate``."""
    parser = subparsers.add_parser(
        "aggregate",
        help="summarise many shards' or ranks' reports: the root cause, an issue title and body",
        description="Read crashsight JSON reports (any version); for the ranks of one job, name "
        "the rank that failed first and why, and the role of every other rank.",
    )
    parser.add_argument("reports", nargs="+", metavar="REPORT.json")
    parser.add_argument("--title-prefix", default="crashsight", help="start of the issue title")
    parser.add_argument(
        "--format",
        choices=("markdown", "text", "json"),
        default="markdown",
        help="markdown: the title on the first line, then the body; text: the verdict first, "
        "for a terminal; json: for machines",
    )
    parser.add_argument("--html", metavar="FILE", help="also write the HTML panel here")
    parser.set_defaults(handler=run_aggregate)


def run_aggregate(args: argparse.Namespace) -> int:
    """Print the aggregate; exit 1 when any shard failed, 2 when no report could be read."""
    result = aggregate((load_shard(path) for path in args.reports), args.title_prefix)
    for item in result.unreadable:
        print(f"crashsight aggregate: skipping {item.path}: {item.reason}", file=sys.stderr)
    if args.format == "json":
        print(result.model_dump_json(indent=2))
    elif args.format == "text":
        print(render_text(result), end="")
    else:
        print(result.title)
        print()
        print(result.body, end="")
    if args.html:
        write_text_atomically(render_panel(panel_from_aggregate(result)), args.html)
    if not result.shards:
        return 2
    return 1 if result.failed_shards or result.missing_ranks else 0
