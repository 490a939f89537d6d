"""What the supervisor concludes about a runner: final statuses and the events it adds itself.

A runner attempt ends in exactly one of `RunnerSucceeded`, `RunnerFailed` or `RunnerCancelled`.
Before a `RunnerFailed`, the supervisor emits one `ErrorChunk` per task that started and never
finished, so a consumer that tracks tasks learns their fate before it learns the runner's.
"""

from __future__ import annotations

import os
import signal
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..diagnostics.children import ChildProcess
from ..diagnostics.hangs import BlockedIn, ProcessInfo, ThreadStack
from ..diagnostics.models import Diagnostic, Role, TimeoutKind
from ..diagnostics.oom import MemoryPressure
from ..protocol import ExceptionInfo
from ..wording import counted

__all__ = [
    "Containment",
    "ErrorChunk",
    "ExitInfo",
    "ProtocolIssue",
    "RunnerCancelled",
    "RunnerFailed",
    "RunnerStatus",
    "RunnerSucceeded",
    "TaskError",
    "TaskSummary",
    "TerminationInfo",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExitInfo(_Model):
    """How the process ended, from its raw wait status."""

    code: int | None = Field(description="Exit status when the process exited; None if signalled.")
    signal: str | None = Field(default=None, description="Signal name, e.g. 'SIGSEGV'.")
    signal_number: int | None = None
    core_dumped: bool = False
    description: str

    @classmethod
    def from_wait_status(cls, status: int) -> ExitInfo:
        """Decode a status from ``os.waitpid``/``os.wait4``."""
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            return cls.from_signal(number, core_dumped=os.WCOREDUMP(status))
        return cls.from_code(os.WEXITSTATUS(status))

    @classmethod
    def from_code(cls, code: int) -> ExitInfo:
        """An ordinary exit with status ``code``."""
        return cls(code=code, description=f"exited with code {code}")

    @classmethod
    def from_signal(cls, number: int, *, core_dumped: bool = False) -> ExitInfo:
        """Death by signal ``number``: ``killed by signal SIGSEGV (11), core dumped``."""
        name = signal_name(number)
        core = ", core dumped" if core_dumped else ""
        return cls(
            code=None,
            signal=name,
            signal_number=number,
            core_dumped=core_dumped,
            description=f"killed by signal {name} ({number}){core}",
        )

    @property
    def shell_code(self) -> int:
        """The status a shell would report: the code, or 128 + the signal number."""
        if self.signal_number is not None:
            return 128 + self.signal_number
        return self.code if self.code is not None else 1

    @property
    def ok(self) -> bool:
        """Whether the process exited with status 0."""
        return self.code == 0


def signal_name(number: int) -> str:
    """``11`` → ``'SIGSEGV'``; unknown numbers become ``'SIG42'``."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


class TaskError(_Model):
    """A task that failed, with a one-line error."""

    task_id: str
    error: str


class TaskSummary(_Model):
    """Tasks that were running when the runner ended, and tasks that reported failure."""

    in_flight: list[str] = Field(default_factory=list)
    failed: list[TaskError] = Field(default_factory=list)


class ProtocolIssue(_Model):
    """A problem on the private channel; the runner stays supervised regardless."""

    problem: str = Field(description="garbage | oversize | invalid | truncated | sequence")
    detail: str
    offset: int | None = None


class TerminationInfo(ExceptionInfo):
    """The exception that ended the runner: sent by the bootstrap, or parsed from stderr."""

    phase: Literal["bootstrap", "target", "unknown"] = "unknown"
    source: Literal["channel", "stderr"] = "channel"


class Containment(_Model):
    """How a runner's processes were held together, and what its own cgroup counted.

    ``cgroup``: the runner had a cgroup v2 of its own; stopping it killed the whole cgroup, so no
    descendant escaped (setsid, double fork, a scrubbed environment). ``process_group``: cgroups
    were off or not writable (``reason`` says which); descendants are found through the process
    group, the process tree and an environment marker, which a daemon can escape.
    """

    method: Literal["cgroup", "process_group"]
    reason: str
    cgroup: str | None = Field(default=None, description="The runner's cgroup v2 folder.")
    memory_cgroup: str | None = Field(
        default=None,
        description="The runner's own memory cgroup folder (v2, or v1 where memory is bound to v1).",
    )
    memory_max_bytes: int | None = None
    pids_max: int | None = None
    oom_kills: int | None = Field(
        default=None,
        description="OOM kills inside this runner's own memory cgroup (any process of its tree); "
        "None without one.",
    )
    memory_limit_hits: int | None = Field(
        default=None, description="Times the tree's memory use reached the limit."
    )
    peak_memory_bytes: int | None = Field(
        default=None, description="Peak memory of the runner's whole process tree."
    )
    pids_limit_hits: int | None = Field(
        default=None, description="Forks refused because the tree reached its pids limit."
    )
    memory_pressure: MemoryPressure | None = Field(
        default=None, description="Memory stall time (PSI) of the tree over its life."
    )

    def pids_refusals(self) -> str | None:
        """The sentence that says the pids limit refused forks, when it did (a note, a summary)."""
        if not self.pids_limit_hits:
            return None
        return (
            f"the pids limit ({self.pids_max}) refused "
            f"{counted(self.pids_limit_hits, 'fork')} in the runner's tree"
        )


class _StatusBase(_Model):
    runner_id: str
    name: str
    attempt: int = Field(default=1, ge=1)
    pid: int
    command: list[str]
    exit: ExitInfo
    started_at: datetime
    duration_s: float
    peak_rss_bytes: int | None = None
    tasks: TaskSummary = Field(default_factory=TaskSummary)
    stderr_tail: list[str] = Field(default_factory=list)
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    protocol_issues: list[ProtocolIssue] = Field(default_factory=list)
    signals_sent: list[str] = Field(
        default_factory=list,
        description="Signals the supervisor sent, so none is blamed on the worker.",
    )
    notes: list[str] = Field(default_factory=list)
    leftovers_killed: int = Field(
        default=0,
        description="Processes the runner left behind (or that held its output open) that the "
        "supervisor killed after the runner itself had exited.",
    )
    events_dropped: int = 0
    rank: int | None = Field(
        default=None, description="Rank in a distributed job (RANK, OMPI_COMM_WORLD_RANK, ...)."
    )
    local_rank: int | None = None
    world_size: int | None = None
    node_rank: int | None = Field(default=None, description="torchrun's GROUP_RANK, Slurm's node.")
    host: str | None = Field(default=None, description="The machine the runner ran on.")
    ended_at: datetime | None = Field(default=None, description="When the runner was reaped (UTC).")
    last_activity_at: datetime | None = Field(
        default=None,
        description="Its last output or channel event (UTC): in a job of many ranks, the one "
        "that went quiet first is the likeliest to have hung.",
    )
    containment: Containment | None = Field(
        default=None, description="None when the runner never started."
    )
    stacks: list[ThreadStack] = Field(
        default_factory=list,
        description="Every Python thread's stack at a stop (crashsight's own, or a SIGTERM from "
        "someone else), from each process of the tree that answered.",
    )
    blocked_in: BlockedIn | None = Field(
        default=None, description="The user's innermost frame in the stuck thread at the stop."
    )
    process_tree: list[ProcessInfo] = Field(
        default_factory=list, description="The runner and its descendants at a stop."
    )


class RunnerSucceeded(_StatusBase):
    """The runner exited with status 0 before any watchdog fired."""

    status: Literal["succeeded"] = "succeeded"


class RunnerFailed(_StatusBase):
    """The runner died, exited non-zero or was stopped by a watchdog; says why in one line."""

    status: Literal["failed"] = "failed"
    category: str
    subcategory: str | None = None
    hint: str | None = None
    summary: str
    rule: str | None = Field(default=None, description="Which classification rule decided.")
    termination_error: TerminationInfo | None = None
    timeout: TimeoutKind | None = None
    oom_killed: bool | None = Field(default=None, description="None when it could not be told.")
    role: Role = Field(
        default="root_cause",
        description="In a job of many ranks: its own fault (root_cause), a peer's failure that "
        "reached it (consequence), or stopped by a signal it did not cause (collateral).",
    )
    first_error_at: datetime | None = Field(
        default=None,
        description="UTC time of the first failure evidence: the first diagnostic line, the "
        "exception, or the death, whichever came first.",
    )
    blamed_peers: list[str] = Field(
        default_factory=list,
        description="Peers its comm errors name (host:port as printed), for the job verdict.",
    )
    in_child: ChildProcess | None = Field(
        default=None,
        description="The worker's child whose death explains the failure (pool, DataLoader or "
        "subprocess), when the worker reported one; the wrapper stays in termination_error.",
    )


class RunnerCancelled(_StatusBase):
    """The runner was stopped on request: `Runner.stop`, supervisor cancellation or a signal."""

    status: Literal["cancelled"] = "cancelled"
    reason: str


RunnerStatus = Annotated[
    RunnerSucceeded | RunnerFailed | RunnerCancelled, Field(discriminator="status")
]


class ErrorChunk(_Model):
    """Emitted for each task in flight when its runner failed, just before the `RunnerFailed`."""

    kind: Literal["error_chunk"] = "error_chunk"
    runner_id: str
    task_id: str
    category: str
    subcategory: str | None = None
    error: str
