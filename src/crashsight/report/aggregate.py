"""One verdict, issue title and body from many shards' or ranks' reports.

GitHub's matrix outputs are awkward to aggregate, so each shard uploads its report as an artifact
and a final job runs ``crashsight aggregate``. The ranks of one distributed job do the same: their
reports carry ``rank``/``world_size`` and a ``role``, and the aggregate names the job's root cause
(`crashsight.diagnostics.jobverdict`) before listing the ranks.

Reports may come from other crashsight versions, so they are read leniently: only the fields this
summary needs, unknown fields ignored. A file that is not a crashsight report is listed as
unreadable, with the reason, instead of stopping the summary. Only those few fields are kept per
report, so thousands of reports cost little memory, and the body is bounded whatever their number.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..diagnostics.jobverdict import JobVerdict, RankOutcome, RootCause, decide_root_cause, who
from ..diagnostics.models import ROLES, Role
from ..redact import MemoRedactor, Redactor
from ..wording import counted
from .markdown import MAX_TASK_LINES, cell, task_error_lines, verdict_label

__all__ = [
    "Aggregate",
    "ShardReport",
    "Unreadable",
    "aggregate",
    "load_shard",
    "ordered_for_reading",
    "outcome_of",
    "ranks_failed_line",
    "root_cause_line",
]


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
    rank: int | None = None
    world_size: int | None = None
    host: str | None = None
    role: Role | None = Field(
        default=None, description="As decided over all reports (see `aggregate`)."
    )
    first_error_at: datetime | None = None
    ended_at: datetime | None = None
    last_activity_at: datetime | None = None
    blamed_peers: list[str] = Field(default_factory=list)
    blocked_in: str | None = None

    @field_validator("context", mode="before")
    @classmethod
    def _context_as_text(cls, value: object) -> object:
        """Other versions or tools may write numbers as context values: read them as text."""
        if isinstance(value, dict):
            return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}
        return value

    @field_validator("role", mode="before")
    @classmethod
    def _known_role(cls, value: object) -> object:
        """A role this version does not know (a newer report's) is decided afresh."""
        return value if value in ROLES else None

    @field_validator("blocked_in", mode="before")
    @classmethod
    def _blocked_in_as_text(cls, value: object) -> object:
        """A report's ``blocked_in`` is an object (file, line, function): read it as one line."""
        if isinstance(value, dict):
            file = str(value.get("file", "?")).replace("\\", "/").rsplit("/", 1)[-1]
            line = f":{value['line']}" if value.get("line") else ""
            return f"{value.get('function', '?')} ({file}{line})"
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
    root_cause: RootCause | None = Field(
        default=None, description="The job's root cause, for reports of ranks of one job."
    )
    root_index: int | None = Field(
        default=None, description="Index in ``shards`` of the root cause's report, if it has one."
    )
    missing_ranks: list[int] = Field(default_factory=list)
    shards: list[ShardReport]
    unreadable: list[Unreadable]


def load_shard(path: str | os.PathLike[str]) -> ShardReport | Unreadable:
    """Read one report file leniently; explain what is wrong instead of raising."""
    where = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        return Unreadable(path=where, reason=f"cannot read it: {exc.strerror or exc}")
    try:
        # Validating the bytes directly skips building Python objects for the fields a report
        # has and the aggregate ignores (stderr tails, diagnostics, stacks): most of its bulk.
        shard = ShardReport.model_validate_json(raw)
    except ValidationError as exc:
        return Unreadable(path=where, reason=_why_unreadable(exc))
    shard.path = where
    return shard


def _why_unreadable(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return f"not JSON ({first['msg']})"
    no_status = any(e["type"] == "missing" and e["loc"] == ("status",) for e in errors)
    if first["type"] == "model_type" or no_status:
        return "not a crashsight report (no 'status' field)"
    field = ".".join(str(p) for p in first["loc"])
    return f"not a crashsight report: {field}: {first['msg']}"


def outcome_of(shard: ShardReport) -> RankOutcome:
    """The job verdict's view of one report; a status it does not know counts as a failure."""
    status = shard.status if shard.status in ("succeeded", "cancelled") else "failed"
    shared = shard.model_dump(include=set(RankOutcome.model_fields))
    return RankOutcome.model_validate(
        {
            **shared,
            "status": status,
            "path": shard.path or None,
            "last_progress_at": shard.last_activity_at,
        }
    )


def aggregate(
    loaded: Iterable[ShardReport | Unreadable], title_prefix: str, redactor: Redactor | None = None
) -> Aggregate:
    """Build the verdict, ``[prefix] (toktx+http, 3 shards)`` and a body listing each verdict.

    Classes are the failed shards' categories, most frequent first; the count is of failed shards.
    When the reports are ranks of one job (they state a rank or world size), the job's root cause
    is decided, every report gets its role, and the body starts with the root-cause line.

    Args:
        loaded: the reports as `load_shard` returns them; a generator is consumed one report at
            a time, so only the redacted copies are ever held.
        title_prefix: start of the issue title.
        redactor: defaults to one for this process's environment.
    """
    redactor = MemoRedactor(redactor or Redactor())
    shards: list[ShardReport] = []
    unreadable: list[Unreadable] = []
    # Shards are printed (JSON, HTML) as well as summarised: redact them before anything else.
    for item in loaded:
        if isinstance(item, ShardReport):
            shards.append(ShardReport.model_validate(redactor.report_fields(item.model_dump())))
        else:
            unreadable.append(Unreadable.model_validate(redactor.value(item.model_dump())))
    job: JobVerdict | None = None
    if any(s.rank is not None or s.world_size is not None for s in shards):
        job = decide_root_cause([outcome_of(s) for s in shards])
        for shard, role in zip(shards, job.roles, strict=True):
            shard.role = role
        cause = job.root_cause
        if job.root_index is not None and cause is not None:
            # A hung rank named root cause gets the job's timeout verdict in its own entry too.
            root = shards[job.root_index]
            if (root.category, root.subcategory) != (cause.category, cause.subcategory):
                root.category, root.subcategory = cause.category, cause.subcategory
                root.summary = cause.summary
    failed = [s for s in shards if s.status == "failed"]
    classes = Counter(s.category or "unknown" for s in failed)
    ranked = sorted(classes, key=lambda c: -classes[c])
    result = Aggregate(
        title=redactor.text(_title(title_prefix, shards, failed, ranked, job).strip()),
        body="",
        failed_shards=len(failed),
        total_shards=len(shards),
        classes={c: classes[c] for c in ranked},
        root_cause=job.root_cause if job else None,
        root_index=job.root_index if job else None,
        missing_ranks=job.missing_ranks if job else [],
        shards=shards,
        unreadable=unreadable,
    )
    result.body = redactor.text(_body(result))
    return result


def _title(
    prefix: str,
    shards: list[ShardReport],
    failed: list[ShardReport],
    ranked: list[str],
    job: JobVerdict | None,
) -> str:
    if job is not None and job.root_cause is not None:
        cause = job.root_cause
        label = cause.category + (f"/{cause.subcategory}" if cause.subcategory else "")
        where = f"rank {cause.rank}" if cause.rank is not None else cause.name
        stopped = sum(1 for shard in shards if shard.role is not None)
        return f"{prefix} ({label} on {where}, {counted(stopped, 'rank')} failed)"
    if failed:
        return f"{prefix} ({'+'.join(ranked)}, {counted(len(failed), 'shard')})"
    return f"{prefix} (no failed shards of {len(shards)})"


def root_cause_line(
    cause: RootCause | None, shards: Sequence[ShardReport], missing_ranks: Sequence[int] = ()
) -> str | None:
    """The job verdict in one line, or None when there is no root cause.

    For example ``root cause: rank 2 (node-a) memory/memory_error: ...; 2 ranks failed as a
    consequence (comm/gloo)``; ``shards`` carry the roles decided for them.
    """
    if cause is None:
        return None
    where = f"rank {cause.rank}" if cause.rank is not None else repr(cause.name)
    where += f" ({cause.host})" if cause.host else ""
    label = cause.category + (f"/{cause.subcategory}" if cause.subcategory else "")
    summary = (
        cause.summary if cause.summary.startswith(f"{label}:") else f"{label}: {cause.summary}"
    )
    parts = [f"root cause: {where} {summary}"]
    roles = Counter(s.role for s in shards if s.role is not None)
    if roles["root_cause"] > 1:
        parts.append(f"{counted(roles['root_cause'] - 1, 'other rank')} failed of its own fault")
    if roles["consequence"]:
        classes = Counter(verdict_label(s) for s in shards if s.role == "consequence")
        listed = ", ".join(
            label if len(classes) == 1 else f"{label} x{n}" for label, n in classes.most_common(5)
        )
        parts.append(f"{counted(roles['consequence'], 'rank')} failed as a consequence ({listed})")
    if roles["collateral"]:
        parts.append(f"{counted(roles['collateral'], 'rank')} stopped as collateral")
    if missing_ranks and not cause.missing:
        parts.append(f"{counted(len(missing_ranks), 'rank')} wrote no report")
    return "; ".join(parts)


def ordered_for_reading(result: Aggregate) -> list[ShardReport]:
    """Shards in the order a reader needs them: the root cause first, then by role and rank.

    Independent shards (no root cause decided): the failed ones first, in the order given.
    """
    shards = result.shards
    if result.root_cause is None:
        return [
            *(s for s in shards if s.status == "failed"),
            *(s for s in shards if s.status != "failed"),
        ]
    ordered = sorted(shards, key=_order)
    if result.root_index is not None:
        root = shards[result.root_index]
        ordered.remove(root)
        ordered.insert(0, root)
    return ordered


def _order(shard: ShardReport) -> tuple[int, int]:
    """Root cause first, then consequences, collateral, other outcomes; by rank within each."""
    weight = {"root_cause": 0, "consequence": 1, "collateral": 2}.get(shard.role or "", 3)
    return (weight, shard.rank if shard.rank is not None else 1 << 30)


def _body(result: Aggregate) -> str:
    shards, bad = result.shards, result.unreadable
    failed = [s for s in shards if s.status == "failed"]
    ordered = ordered_for_reading(result)
    distributed = result.root_cause is not None
    if distributed:
        lines = _job_head(result)
        lines += ["| rank | role | verdict | summary |", "| --- | --- | --- | --- |"]
        row = _rank_row
    else:
        lines = [f"{len(failed)} of {len(shards)} shards failed.", ""]
        lines += ["| shard | verdict | summary |", "| --- | --- | --- |"]
        row = _shard_row
    # A GitHub issue body holds 65,536 characters, so rows and cells are bounded and the rest is
    # counted by verdict.
    lines += [row(shard) for shard in ordered[:_MAX_SHARD_ROWS]]
    rest = Counter(verdict_label(shard) for shard in ordered[_MAX_SHARD_ROWS:])
    if rest:
        counted = ", ".join(f"{label} x{n}" for label, n in rest.most_common(10))
        noun = "ranks" if distributed else "shards"
        pad = " | |" if distributed else " |"
        lines.append(f"| … {sum(rest.values())} more {noun} | {counted} |{pad}")
    task_lines = [line for shard in failed for line in task_error_lines(shard)]
    if task_lines:
        lines += ["", f"**Failed tasks ({len(task_lines)})**", ""]
        lines += [f"- {cell(line)}" for line in task_lines[:MAX_TASK_LINES]]
        if len(task_lines) > MAX_TASK_LINES:
            lines.append(f"- … and {len(task_lines) - MAX_TASK_LINES} more")
    if bad:
        lines += ["", "**Unreadable reports**", ""]
        lines += [f"- `{cell(item.path)}`: {cell(item.reason)}" for item in bad[:_MAX_SHARD_ROWS]]
        if len(bad) > _MAX_SHARD_ROWS:
            lines.append(f"- … and {len(bad) - _MAX_SHARD_ROWS} more")
    return "\n".join(lines) + "\n"


def _job_head(result: Aggregate) -> list[str]:
    lines = [cell(root_cause_line(result.root_cause, result.shards, result.missing_ranks) or "")]
    if result.root_cause is not None:
        lines += [""] + [f"- {cell(step)[:_MAX_CELL]}" for step in result.root_cause.basis]
    return [*lines, "", ranks_failed_line(result), ""]


def ranks_failed_line(result: Aggregate) -> str:
    """``3 of 4 ranks failed. No report from rank(s) 3.``, counting stopped ranks as failed."""
    missing = ""
    if result.missing_ranks:
        listed = ", ".join(map(str, result.missing_ranks[:20]))
        extra = len(result.missing_ranks) - 20
        missing = f" No report from rank(s) {listed}{f' and {extra} more' if extra > 0 else ''}."
    failed = sum(1 for shard in result.shards if shard.role is not None)
    return f"{failed} of {result.total_shards} ranks failed.{missing}"


def _shard_row(shard: ShardReport) -> str:
    summary = cell(shard.summary)[:_MAX_CELL]
    return f"| {cell(_shard_name(shard))[:_MAX_CELL]} | {verdict_label(shard)} | {summary} |"


def _rank_row(shard: ShardReport) -> str:
    label = who(outcome_of(shard)) if shard.rank is not None else _shard_name(shard)
    role = (shard.role or "-").replace("_", " ")
    summary = cell(shard.summary)[:_MAX_CELL]
    return f"| {cell(label)[:_MAX_CELL]} | {role} | {verdict_label(shard)} | {summary} |"


#: Rows and cell width of the shard table: 50 rows of 200 characters stay far below GitHub's limit.
_MAX_SHARD_ROWS = 50
_MAX_CELL = 200


def _shard_name(shard: ShardReport) -> str:
    return shard.context.get("shard") or Path(shard.path).stem or shard.name
