"""GitHub Actions: a step summary section and step outputs for one runner's report.

When ``GITHUB_ACTIONS=true``, ``crashsight run`` appends a markdown section to the file named by
``$GITHUB_STEP_SUMMARY`` and writes outputs to ``$GITHUB_OUTPUT``, so a workflow can branch on the
failure class (``steps.shard.outputs.error_class == 'http'``) without parsing logs. Every value
uses the heredoc syntax with a random delimiter, so a multi-line or hostile value cannot inject
another output.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path

from ..wording import counted
from .markdown import MAX_TASK_LINES, cell, fenced, task_error_lines
from .model import Report
from .stacks_text import stack_lines, tree_lines

__all__ = ["github_outputs", "publish_to_github", "step_summary"]


def step_summary(report: Report) -> str:
    """The markdown section for one report: verdict, exit, tasks, diagnostics, stderr tail."""
    icon = {"succeeded": "✅", "failed": "❌", "cancelled": "⏹️"}[report.status]
    lines = [f"### {icon} crashsight: {cell(report.name)}", "", f"**{cell(report.summary)}**", ""]
    lines.append(f"- exit: {report.exit.description}")
    if report.hint:
        lines.append(f"- hint: {cell(report.hint)}")
    if report.blocked_in is not None:
        where = report.blocked_in
        lines.append(f"- blocked in: `{cell(where.function)}` at `{cell(where.file)}:{where.line}`")
    if report.in_child is not None:
        child = report.in_child
        lines.append(f"- failed in: {cell(child.label())}, {cell(child.exit or 'exit unknown')}")
    for key, value in report.context.items():
        lines.append(f"- {cell(key)}: {cell(value)}")
    tasks = task_error_lines(report)
    if tasks:
        lines += ["", f"**Failed tasks ({len(tasks)})**", ""]
        lines += [f"- {cell(line)}" for line in tasks[:MAX_TASK_LINES]]
        if len(tasks) > MAX_TASK_LINES:
            lines.append(f"- … and {len(tasks) - MAX_TASK_LINES} more")
    if report.diagnostics:
        lines += ["", "| signature | verdict | count | first line |", "| --- | --- | ---: | --- |"]
        for d in report.diagnostics:
            lines.append(
                f"| `{d.id}` | {d.category}/{d.subcategory} | {d.count} | {cell(d.first_line)[:200]} |"
            )
    if report.stderr_tail:
        lines += ["", "<details><summary>stderr tail</summary>", "", fenced(report.stderr_tail)]
        lines += ["", "</details>"]
    lines += _stop_sections(report)
    return "\n".join(lines) + "\n\n"


def _stop_sections(report: Report) -> list[str]:
    """Collapsed sections with the stacks and the process tree of a stop."""
    lines: list[str] = []
    if report.stacks:
        count = counted(len(report.stacks), "thread")
        lines += ["", f"<details><summary>Stacks at the stop ({count})</summary>", ""]
        lines += [fenced(stack_lines(report.stacks, report.process_tree)), "", "</details>"]
    if report.process_tree:
        lines += ["", "<details><summary>Process tree at the stop</summary>", ""]
        lines += [fenced(tree_lines(report.process_tree)), "", "</details>"]
    return lines


def github_outputs(report: Report) -> dict[str, str]:
    """Step outputs: the failure class, its subcategory, the failed-task count and the summary."""
    return {
        "error_class": report.category or "",
        "error_subcategory": report.subcategory or "",
        "failed_tasks": str(len(task_error_lines(report))),
        "status": report.status,
        "summary": report.summary,
    }


def publish_to_github(report: Report, env: Mapping[str, str] | None = None) -> bool:
    """Append the step summary and outputs when running in GitHub Actions; True if it did."""
    env = os.environ if env is None else env
    if env.get("GITHUB_ACTIONS") != "true":
        return False
    summary_path = env.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        with Path(summary_path).open("a", encoding="utf-8") as handle:
            handle.write(step_summary(report))
    output_path = env.get("GITHUB_OUTPUT")
    if output_path:
        with Path(output_path).open("a", encoding="utf-8") as handle:
            for name, value in github_outputs(report).items():
                delimiter = f"ghadelimiter_{uuid.uuid4().hex}"
                handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return True
