"""Filling the HTML panel from each command's result: a run report and a cross-shard aggregate."""

from __future__ import annotations

import shlex

from ..diagnostics.analysis_model import AnalyzeResult
from .aggregate import Aggregate, ordered_for_reading, root_cause_line
from .html import Panel, PanelRow, TimelineEntry
from .markdown import verdict_label
from .model import Report
from .stacks_text import stack_lines, tree_lines
from .terminal import render_verdict

__all__ = ["panel_from_aggregate", "panel_from_analysis", "panel_from_report"]


def panel_from_report(report: Report) -> Panel:
    """The page for one `crashsight run`: verdict, diagnostics, timeline, traceback, stderr."""
    started = report.started_at
    timeline = [TimelineEntry(when=started.isoformat(timespec="milliseconds"), what="started")]
    for d in report.diagnostics:
        timeline.append(
            TimelineEntry(
                when=d.first_time.isoformat(timespec="milliseconds"), what=f"first {d.id}"
            )
        )
    ended = started.timestamp() + report.duration_s
    timeline.append(
        TimelineEntry(
            when=type(started)
            .fromtimestamp(ended, started.tzinfo)
            .isoformat(timespec="milliseconds"),
            what=report.exit.description,
        )
    )
    facts = [
        ("command", shlex.join(report.command)),
        ("exit", report.exit.description),
        ("duration", f"{report.duration_s:.2f} s"),
        ("pid", str(report.pid)),
    ]
    if report.peak_rss_bytes:
        facts.append(("peak RSS", f"{report.peak_rss_bytes / 2**20:.1f} MiB"))
    if report.in_child is not None:
        child = report.in_child
        facts.append(("failed in", f"{child.label()}: {child.exit or 'exit unknown'}"))
        facts += [("child command", shlex.join(child.cmdline))] if child.cmdline else []
    facts += [(f"context: {k}", v) for k, v in report.context.items()]
    facts += [("note", note) for note in report.notes]
    text = render_verdict(report)
    if report.stderr_tail:
        text += "\n\nstderr tail:\n" + "\n".join(report.stderr_tail)
    if report.stacks:
        text += "\n\nstacks at the stop:\n" + "\n".join(
            stack_lines(report.stacks, report.process_tree)
        )
    if report.process_tree:
        text += "\n\nprocess tree at the stop:\n" + "\n".join(tree_lines(report.process_tree))
    return Panel(
        title=f"crashsight: {report.name}",
        status=report.status,
        verdict=verdict_label(report),
        summary=report.summary,
        hint=report.hint,
        facts=facts,
        rows=[
            PanelRow(
                label=d.id,
                verdict=f"{d.category}/{d.subcategory}",
                count=d.count,
                example=d.first_line,
                detail=d.description,
            )
            for d in report.diagnostics
        ],
        timeline=sorted(timeline, key=lambda entry: entry.when),
        traceback=report.termination_error,
        stderr_tail=report.stderr_tail,
        stacks=report.stacks,
        blocked_in=report.blocked_in,
        process_tree=report.process_tree,
        full_text=text,
    )


def panel_from_aggregate(result: Aggregate) -> Panel:
    """The page for `crashsight aggregate`: the root cause first, then one row per report."""
    cause = root_cause_line(result.root_cause, result.shards, result.missing_ranks)
    noun = "ranks" if result.root_cause is not None else "shards"
    return Panel(
        title=result.title,
        status="failed" if result.failed_shards or result.missing_ranks else "succeeded",
        verdict=" + ".join(f"{c} x{n}" for c, n in result.classes.items()) or "no failures",
        summary=cause or f"{result.failed_shards} of {result.total_shards} {noun} failed",
        facts=[("basis", step) for step in (result.root_cause.basis if result.root_cause else [])],
        rows=[
            PanelRow(
                label=(f"rank {shard.rank}" if shard.rank is not None else None)
                or shard.context.get("shard")
                or shard.path
                or shard.name,
                verdict=verdict_label(shard),
                count=1,
                example=shard.summary,
                detail=shard.role.replace("_", " ") if shard.role else "",
            )
            for shard in ordered_for_reading(result)[:_MAX_PANEL_ROWS]
        ],
        full_text=f"{result.title}\n\n{result.body}",
    )


#: Rows of the aggregate page: thousands of ranks would make a page nobody reads.
_MAX_PANEL_ROWS = 500


def panel_from_analysis(result: AnalyzeResult, text: str) -> Panel:
    """The page for `crashsight analyze`: the phase-aware verdict and the deduplicated errors.

    Args:
        result: The analysis.
        text: The plain-text rendering, for the copy button.
    """
    analysis = result.analysis
    rows = [
        PanelRow(
            label=" ".join(
                filter(
                    None, (row.phase or "-", row.phase_kind and f"({row.phase_kind})", row.level)
                )
            ),
            verdict=row.category + (f"/{row.subcategory}" if row.subcategory else ""),
            count=row.count,
            example=row.message,
            detail=f"lines {row.first_lineno}-{row.last_lineno}: {row.template}",
        )
        for row in result.errors
    ]
    timeline = [
        TimelineEntry(when=row.first_time, what=f"first: {row.template[:120]}")
        for row in result.errors
        if row.first_time
    ] + [
        TimelineEntry(when=row.last_time, what=f"last (x{row.count}): {row.template[:120]}")
        for row in result.errors
        if row.last_time and row.count > 1
    ]
    facts = [("file", result.file), ("lines", str(result.stats.lines))]
    if analysis is not None:
        facts += [
            ("phase", analysis.phase or "unknown"),
            ("phase kind", analysis.phase_kind or "unknown"),
            ("confidence", f"{analysis.confidence}"),
        ]
        facts += [("basis", basis) for basis in analysis.confidence_basis]
        facts += [("suggestion", suggestion) for suggestion in analysis.suggestions]
    traceback = result.traceback
    return Panel(
        title=f"crashsight analyze: {result.file}",
        status="failed" if result.errors else "succeeded",
        verdict=(
            analysis.category + (f"/{analysis.subcategory}" if analysis.subcategory else "")
            if analysis is not None
            else result.status
        ),
        summary=analysis.summary if analysis is not None else result.message,
        hint=analysis.description if analysis is not None else None,
        facts=facts,
        rows=rows,
        timeline=sorted(timeline, key=lambda entry: entry.when),
        traceback=traceback.exception if traceback is not None else None,
        full_text=text,
    )
