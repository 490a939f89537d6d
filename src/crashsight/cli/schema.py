"""``crashsight schema``: the JSON Schema of the report, generated from the models."""

from __future__ import annotations

import argparse
import json

from ..report.model import Report

__all__ = ["add_schema_parser"]


def add_schema_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``schema``."""
    parser = subparsers.add_parser("schema", help="print the JSON Schema of crashsight reports")
    parser.set_defaults(handler=run_schema)


def run_schema(args: argparse.Namespace) -> int:
    """Print the schema; it is the contract that report readers can validate against."""
    print(json.dumps(Report.model_json_schema(), indent=2))
    return 0
