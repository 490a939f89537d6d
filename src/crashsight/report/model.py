"""The JSON report: one document per runner outcome, written on success too.

The field names below are a contract with operators' tooling; fields may be added, never renamed.
``schema_version`` changes only when an existing field changes meaning.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..diagnostics.children import ChildProcess
from ..diagnostics.hangs import BlockedIn, ProcessInfo, ThreadStack
from ..diagnostics.launcher import LauncherJob, RankVerdict
from ..diagnostics.models import Diagnostic, Role, TimeoutKind
from ..diagnostics.phases import frames_kind, stacks_kind
from ..redact import Redactor
from ..supervisor.status import (
    Containment,
    ExitInfo,
    ProtocolIssue,
    RunnerCancelled,
    RunnerFailed,
    RunnerStatus,
    TaskSummary,
    TerminationInfo,
)
from ..version import crashsight_version

__all__ = ["REPORT_SCHEMA_VERSION", "Report"]

REPORT_SCHEMA_VERSION = 1


class Report(BaseModel):
    """What one runner did and, when it failed, why."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = REPORT_SCHEMA_VERSION
    crashsight_version: str = Field(default_factory=crashsight_version)
    name: str
    status: Literal["succeeded", "failed", "cancelled"]
    category: str | None = None
    subcategory: str | None = None
    summary: str
    hint: str | None = None
    exit: ExitInfo
    termination_error: TerminationInfo | None = None
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    stderr_tail: list[str] = Field(default_factory=list)
    tasks: TaskSummary = Field(default_factory=TaskSummary)
    command: list[str]
    pid: int
    started_at: datetime
    duration_s: float
    peak_rss_bytes: int | None = None
    timeout: TimeoutKind | None = None
    oom_killed: bool | None = None
    in_child: ChildProcess | None = None
    signals_sent: list[str] = Field(default_factory=list)
    protocol_issues: list[ProtocolIssue] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    leftovers_killed: int = 0
    phase_kind: str | None = Field(
        default=None,
        description="The kind of work it failed in (data, initialization, training, evaluation, "
        "checkpoint, export, monitoring), from the termination error's frames or, for a hang, "
        "the stuck thread's stack; see crashsight.diagnostics.phases.",
    )
    containment: Containment | None = Field(
        default=None,
        description="How the runner's processes were contained (cgroup or process group) and "
        "why, with its own cgroup's memory and pids counters.",
    )
    stacks: list[ThreadStack] = Field(default_factory=list)
    blocked_in: BlockedIn | None = None
    process_tree: list[ProcessInfo] = Field(default_factory=list)
    attempts: int = 1
    context: dict[str, str] = Field(default_factory=dict)
    rank: int | None = None
    local_rank: int | None = None
    world_size: int | None = None
    node_rank: int | None = None
    host: str | None = None
    role: Role | None = Field(
        default=None,
        description="For a failure: root_cause, consequence or collateral (see the rules' "
        "taxonomy); None for a success.",
    )
    first_error_at: datetime | None = None
    ended_at: datetime | None = None
    last_activity_at: datetime | None = None
    blamed_peers: list[str] = Field(default_factory=list)
    ranks: list[RankVerdict] = Field(
        default_factory=list,
        description="For a launcher wrapped whole (torchrun): how each rank ended and its role.",
    )
    root_cause_rank: int | None = Field(
        default=None, description="The rank the job failed because of, when ranks were split."
    )

    @classmethod
    def from_status(
        cls,
        status: RunnerStatus,
        *,
        attempts: int = 1,
        context: dict[str, str] | None = None,
        redactor: Redactor | None = None,
    ) -> Report:
        """Build the report of a final status, passing every string through the redactor."""
        outcome: dict[str, object]
        if isinstance(status, RunnerFailed):
            outcome = status.model_dump(
                include={
                    "category",
                    "subcategory",
                    "summary",
                    "hint",
                    "termination_error",
                    "timeout",
                    "oom_killed",
                    "role",
                    "first_error_at",
                    "blamed_peers",
                    "in_child",
                }
            )
        elif isinstance(status, RunnerCancelled):
            where = f"; stopped in {status.blocked_in.describe()}" if status.blocked_in else ""
            outcome = {"summary": f"cancelled: {status.reason}{where}"}
        else:
            outcome = {"summary": f"succeeded: {status.exit.description}"}
        common = status.model_dump(
            include={
                "name",
                "status",
                "exit",
                "diagnostics",
                "stderr_tail",
                "tasks",
                "command",
                "pid",
                "started_at",
                "duration_s",
                "peak_rss_bytes",
                "signals_sent",
                "protocol_issues",
                "notes",
                "leftovers_killed",
                "rank",
                "local_rank",
                "world_size",
                "node_rank",
                "host",
                "ended_at",
                "last_activity_at",
                "containment",
                "stacks",
                "blocked_in",
                "process_tree",
            }
        )
        report = cls.model_validate(
            {
                **common,
                **outcome,
                "phase_kind": _phase_kind(status) if isinstance(status, RunnerFailed) else None,
                "attempts": attempts,
                "context": context or {},
            }
        )
        redactor = redactor or Redactor()
        return cls.model_validate(redactor.report_fields(report.model_dump(mode="json")))

    def with_launcher_job(self, job: LauncherJob, redactor: Redactor | None = None) -> Report:
        """This launcher's report with the job's verdict: the root-cause rank's, not the launcher's.

        torchrun's own failure (``ChildFailedError``) only says that a child failed; the
        category, subcategory and summary become the root-cause rank's, prefixed with its rank.
        """
        update: dict[str, object] = {
            "ranks": job.ranks,
            "root_cause_rank": job.root_cause_rank,
            "notes": [*self.notes, *job.notes],
        }
        root = job.root_cause
        if self.status == "failed" and root is not None:
            where = f"rank {root.rank}" if root.rank is not None else root.name
            update |= {
                "category": root.category,
                "subcategory": root.subcategory,
                "summary": f"{where}: {root.summary}",
                "hint": job.hint,
            }
        report = self.model_copy(update=update)
        redactor = redactor or Redactor()
        return Report.model_validate(redactor.report_fields(report.model_dump(mode="json")))


def _phase_kind(status: RunnerFailed) -> str | None:
    """The kind of work a failed runner was doing: its error's frames, else the stuck thread's."""
    found = frames_kind(status.termination_error)
    if found is None and status.stacks:
        stuck = status.blocked_in
        stacks = sorted(
            status.stacks,
            key=lambda s: not (stuck and (s.pid, s.thread_id) == (stuck.pid, stuck.thread_id)),
        )
        found = stacks_kind(stack.frames for stack in stacks)
    return found[0] if found else None
