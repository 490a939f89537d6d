"""One issue title and body from many shards' reports.

GitHub's matrix outputs are awkward to aggregate, so each shard uploads its report as an artifact
and a final job runs ``crashsight aggregate``. Reports may come from other crashsight versions, so
they are read leniently: only the fields this summary needs, unknown fields ignored. A file that is
not a crashsight report is listed as unreadable, with the reason, instead of stopping the summary.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..redact import Redactor
from .markdown import MAX_TASK_LINES, cell, task_error_lines, verdict_label

__all__ = ["Aggregate", "ShardReport", "Unreadable", "aggregate", "load_shard"]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Exit(_Lenient):
    description: str = ""


class _TaskError(_Lenient):
    task_id: str
    error: str


class _Tasks(_Lenient):
    in_flight: list[str] = Field(default_factory=list)
    failed: list[_TaskError] = Field(default_factory=list)


class ShardReport(_Lenient):
    """The part of a crashsight report that the aggregate reads, from any report version."""

    path: str = ""
    schema_version: int = 1
    crashsight_version: str = "unknown"
    name: str
    status: str
    category: str | None = None
    subcategory: str | None = None
    summary: str
    exit: _Exit = Field(default_factory=_Exit)
    tasks: _Tasks = Field(default_factory=_Tasks)
    context: dict[str, str] = Field(default_factory=dict)

    @field_validator("context", mode="before")
    @classmethod
    def _context_as_text(cls, value: object) -> object:
        """Other versions or tools may write numbers as context values: read them as text."""
        if isinstance(value, dict):
            return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}
        return value


class Unreadable(BaseModel):
    """A file given to ``aggregate`` that could not be read as a report."""

    path: str
    reason: str


class Aggregate(BaseModel):
    """The issue title and markdown body, with the shards they were built from."""

    title: str
    body: str
    failed_shards: int
    total_shards: int
    classes: dict[str, int]
    shards: list[ShardReport]
    unreadable: list[Unreadable]


def load_shard(path: str | os.PathLike[str]) -> ShardReport | Unreadable:
    """Read one report file leniently; explain what is wrong instead of raising."""
    where = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        return Unreadable(path=where, reason=f"cannot read it: {exc.strerror or exc}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Unreadable(path=where, reason=f"not JSON ({exc})")
    if not isinstance(data, dict) or "status" not in data:
        return Unreadable(path=where, reason="not a crashsight report (no 'status' field)")
    try:
        return ShardReport.model_validate({**data, "path": where})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"])
        return Unreadable(path=where, reason=f"not a crashsight report: {field}: {first['msg']}")


def aggregate(
    loaded: list[ShardReport | Unreadable], title_prefix: str, redactor: Redactor | None = None
) -> Aggregate:
    """Build ``[prefix] (toktx+http, 3 shards)`` and a body listing each shard's verdict.

    Classes are the failed shards' categories, most frequent first; the count is of failed shards.
    """
    redactor = redactor or Redactor()
    shards = [s for s in loaded if isinstance(s, ShardReport)]
    unreadable = [s for s in loaded if isinstance(s, Unreadable)]
    # Shards are printed (JSON, HTML) as well as summarised: redact them before anything else.
    shards = [ShardReport.model_validate(redactor.report_fields(s.model_dump())) for s in shards]
    unreadable = [Unreadable.model_validate(redactor.value(u.model_dump())) for u in unreadable]
    failed = [s for s in shards if s.status == "failed"]
    classes = Counter(s.category or "unknown" for s in failed)
    ranked = sorted(classes, key=lambda c: -classes[c])
    noun = "shard" if len(failed) == 1 else "shards"
    if failed:
        title = f"{title_prefix} ({'+'.join(ranked)}, {len(failed)} {noun})"
    else:
        title = f"{title_prefix} (no failed shards of {len(shards)})"
    body = _body(shards, failed, unreadable)
    return Aggregate(
        title=redactor.text(title.strip()),
        body=redactor.text(body),
        failed_shards=len(failed),
        total_shards=len(shards),
        classes={c: classes[c] for c in ranked},
        shards=shards,
        unreadable=unreadable,
    )


def _body(shards: list[ShardReport], failed: list[ShardReport], bad: list[Unreadable]) -> str:
    lines = [f"{len(failed)} of {len(shards)} shards failed.", ""]
    lines += ["| shard | verdict | summary |", "| --- | --- | --- |"]
    # Failed shards first; a GitHub issue body holds 65,536 characters, so rows and cells are
    # bounded and the rest is counted by verdict.
    ordered = [*failed, *(s for s in shards if s.status != "failed")]
    for shard in ordered[:_MAX_SHARD_ROWS]:
        summary = cell(shard.summary)[:_MAX_CELL]
        lines.append(
            f"| {cell(_shard_name(shard))[:_MAX_CELL]} | {verdict_label(shard)} | {summary} |"
        )
    rest = Counter(verdict_label(shard) for shard in ordered[_MAX_SHARD_ROWS:])
    if rest:
        counted = ", ".join(f"{label} x{n}" for label, n in rest.most_common())
        lines.append(f"| … {sum(rest.values())} more shards | {counted} | |")
    task_lines = [line for shard in failed for line in task_error_lines(shard)]
    if task_lines:
        lines += ["", f"**Failed tasks ({len(task_lines)})**", ""]
        lines += [f"- {cell(line)}" for line in task_lines[:MAX_TASK_LINES]]
        if len(task_lines) > MAX_TASK_LINES:
            lines.append(f"- … and {len(task_lines) - MAX_TASK_LINES} more")
    if bad:
        lines += ["", "**Unreadable reports**", ""]
        lines += [f"- `{cell(item.path)}`: {cell(item.reason)}" for item in bad]
    return "\n".join(lines) + "\n"


#: Rows and cell width of the shard table: 50 rows of 200 characters stay far below GitHub's limit.
_MAX_SHARD_ROWS = 50
_MAX_CELL = 200


def _shard_name(shard: ShardReport) -> str:
    return shard.context.get("shard") or Path(shard.path).stem or shard.name
