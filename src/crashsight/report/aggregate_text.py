"""The plain-text rendering of `crashsight aggregate`: the verdict first, for a terminal or a log.

The first line is the answer: the job's root cause for ranks of one job, or the issue title for
independent shards. Then the decision's basis, and one line per report, bounded like the markdown.
"""

from __future__ import annotations

from collections import Counter

from .aggregate import (
    Aggregate,
    ordered_for_reading,
    ranks_failed_line,
    root_cause_line,
)
from .markdown import verdict_label

__all__ = ["render_text"]

#: Report lines shown; the rest are counted by verdict, as in the markdown body.
MAX_LINES = 50
_MAX_SUMMARY = 200


def render_text(result: Aggregate) -> str:
    """The aggregate as plain text, ending with a newline."""
    line = root_cause_line(result.root_cause, result.shards, result.missing_ranks)
    if line is None or result.root_cause is None:
        lines = [result.title, f"{result.failed_shards} of {result.total_shards} shards failed."]
    else:
        lines = [line, *(f"  basis: {step}" for step in result.root_cause.basis)]
        lines.append(ranks_failed_line(result))
    ordered = ordered_for_reading(result)
    for shard in ordered[:MAX_LINES]:
        who = f"rank {shard.rank}" if shard.rank is not None else shard.name
        who += f" ({shard.host})" if shard.host else ""
        role = f"  [{shard.role.replace('_', ' ')}]" if shard.role else ""
        lines.append(f"  {who}{role}  {shard.summary[:_MAX_SUMMARY]}")
    rest = len(ordered) - MAX_LINES
    if rest > 0:
        counts = Counter(verdict_label(shard) for shard in ordered[MAX_LINES:])
        listed = ", ".join(f"{label} x{n}" for label, n in counts.most_common(10))
        lines.append(f"  … {rest} more: {listed}")
    lines += [f"unreadable: {item.path}: {item.reason}" for item in result.unreadable[:MAX_LINES]]
    return "\n".join(lines) + "\n"
