"""From what an attempt observed to its final status: the seam between supervision and diagnosis.

`AttemptFacts` accumulates what the supervisor sees while a runner runs. `build_status` turns it into
exactly one final status; for a failure it asks the classifier for the verdict and writes one
`ErrorChunk` per task that never finished. Every string that ends up in a status passes the
redactor, so secrets in a worker's stderr or exception messages never reach a report.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..diagnostics.catalogue import enrich_fields
from ..diagnostics.children import ChildProcess, find_child
from ..diagnostics.classify import Facts, Verdict
from ..diagnostics.collector import StderrCollector
from ..diagnostics.jobverdict import peers_named
from ..diagnostics.oom import OomCounters, oom_evidence, read_cgroup_oom_counters
from ..diagnostics.summary import summary_line
from ..diagnostics.tracebacks import TracebackCapture
from ..protocol import RunnerTerminationError
from ..redact import Redactor
from ..wording import counted
from .identity import identity_from_env
from .status import (
    Containment,
    ErrorChunk,
    ExitInfo,
    ProtocolIssue,
    RunnerCancelled,
    RunnerFailed,
    RunnerStatus,
    RunnerSucceeded,
    TaskError,
    TaskSummary,
    TerminationInfo,
)
from .timeline import TracebackClock, first_error_at

if TYPE_CHECKING:
    from ..diagnostics.models import TimeoutKind
    from .config import RunnerConfig
    from .snapshot import Snapshot

__all__ = ["AttemptFacts", "build_status"]

#: Protocol issues kept per attempt; a runner spraying garbage must not grow the report unboundedly.
_MAX_ISSUES = 50


@dataclass
class AttemptFacts:
    """What the supervisor observed during one attempt."""

    config: RunnerConfig
    attempt: int
    pid: int = 0
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_mono: float = 0.0
    started_epoch: float = 0.0
    oom_before: OomCounters | None = None
    containment: Containment | None = None
    exit: ExitInfo | None = None
    peak_rss_bytes: int | None = None
    ended_mono: float | None = None
    ended_at: datetime | None = None
    last_activity_at: datetime | None = None
    in_flight: dict[str, None] = field(default_factory=dict)
    failed_tasks: list[TaskError] = field(default_factory=list)
    termination_error: RunnerTerminationError | None = None
    termination_at: datetime | None = None
    cancel_reason: str | None = None
    timeout: TimeoutKind | None = None
    signals_sent: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    leftovers_killed: int = 0
    issues: list[ProtocolIssue] = field(default_factory=list)
    issues_dropped: int = 0
    events_dropped: int = 0
    capture: TracebackCapture = field(default_factory=TracebackCapture)
    traceback_clock: TracebackClock = field(default_factory=TracebackClock)
    snapshot: Snapshot | None = None
    collector: StderrCollector = field(init=False)

    def __post_init__(self) -> None:
        self.collector = StderrCollector(
            self.config.signatures,
            line_sinks=[self.capture, self.traceback_clock, *self.config.stderr_sinks],
            enrich=enrich_fields,
        )

    def start(self, pid: int, oom_before: OomCounters | None) -> None:
        """Record the spawn."""
        self.pid = pid
        self.started_at = datetime.now(UTC)
        self.started_mono = time.monotonic()
        self.started_epoch = time.time()
        self.oom_before = oom_before

    def exited(self, exit_info: ExitInfo, peak_rss_bytes: int | None) -> None:
        """Record the reaped exit."""
        self.exit = exit_info
        self.peak_rss_bytes = peak_rss_bytes
        self.ended_mono = time.monotonic()
        self.ended_at = datetime.now(UTC)

    def terminated_with(self, error: RunnerTerminationError) -> None:
        """The runner sent the exception that ends it; its arrival is failure evidence."""
        self.termination_error = error
        self.termination_at = datetime.now(UTC)

    def task_started(self, task_id: str) -> None:
        """A task began."""
        self.in_flight[task_id] = None

    def task_finished(self, task_id: str, ok: bool, error: str | None) -> None:
        """A task ended, well or badly."""
        self.in_flight.pop(task_id, None)
        if not ok:
            self.failed_tasks.append(TaskError(task_id=task_id, error=error or "failed"))

    def issue(self, issue: ProtocolIssue) -> None:
        """A protocol problem on the channel, kept up to a bound and counted beyond it."""
        if len(self.issues) < _MAX_ISSUES:
            self.issues.append(issue)
        else:
            self.issues_dropped += 1


def build_status(facts: AttemptFacts) -> tuple[RunnerStatus, list[ErrorChunk]]:
    """Decide the final status of an attempt, and the ErrorChunks that precede a failure."""
    config = facts.config
    exit_info = facts.exit or ExitInfo(code=None, description="never observed to exit")
    ended = facts.ended_mono if facts.ended_mono is not None else time.monotonic()
    notes = list(facts.notes)
    if facts.issues_dropped:
        notes.append(f"{facts.issues_dropped} more protocol issues were not kept")
    tail, diagnostics = facts.collector.tail, facts.collector.diagnostics  # both computed
    identity = identity_from_env(config.env if config.env is not None else os.environ)
    common = {
        "runner_id": config.runner_id,
        "name": config.name,
        "attempt": facts.attempt,
        "pid": facts.pid,
        "command": config.argv,
        "exit": exit_info,
        "started_at": facts.started_at,
        "duration_s": round(ended - facts.started_mono, 6),
        "peak_rss_bytes": facts.peak_rss_bytes,
        "tasks": TaskSummary(in_flight=list(facts.in_flight), failed=facts.failed_tasks),
        "stderr_tail": tail,
        "diagnostics": diagnostics,
        "protocol_issues": facts.issues,
        "signals_sent": facts.signals_sent,
        "notes": notes,
        "leftovers_killed": facts.leftovers_killed,
        "events_dropped": facts.events_dropped,
        **identity.model_dump(),
        "ended_at": facts.ended_at,
        "last_activity_at": facts.last_activity_at,
        "containment": facts.containment,
    }
    redactor = config.redactor or Redactor(config.env if config.env is not None else os.environ)
    if facts.snapshot is not None:
        common |= facts.snapshot.status_fields(redactor.argv)
        notes.extend(facts.snapshot.notes)
    chunks: list[ErrorChunk] = []
    status: RunnerStatus
    if facts.cancel_reason is not None:
        status = RunnerCancelled(reason=facts.cancel_reason, **common)
    elif exit_info.ok and facts.timeout is None:
        status = RunnerSucceeded(**common)
    else:
        termination = _termination(facts)
        chain = termination.chain() if termination is not None else []
        child = find_child(chain, diagnostics, exit_info.signal)
        own = facts.containment
        in_tree = None if own is None or own.oom_kills is None else own.oom_kills > 0
        oom = _oom_killed(facts.oom_before, exit_info, child) if in_tree is None else in_tree
        pids_hits = own.pids_limit_hits if own is not None else None
        verdict = config.classifier.classify(
            Facts(
                termination_error=termination,
                diagnostics=diagnostics,
                stderr_lines=tail,
                exit_code=exit_info.code,
                signal=exit_info.signal,
                timeout=facts.timeout,
                oom_killed=oom,
                oom_in_tree=in_tree,
                in_child=child,
                pids_limited=None if pids_hits is None else pids_hits > 0,
            )
        )
        status = RunnerFailed(
            category=verdict.category,
            subcategory=verdict.subcategory,
            hint=verdict.hint,
            rule=verdict.rule,
            summary=_summary(verdict, facts, exit_info, termination, redactor, child),
            in_child=child,
            termination_error=termination,
            timeout=facts.timeout,
            oom_killed=oom,
            role=verdict.role,
            first_error_at=first_error_at(
                diagnostics,
                facts.traceback_clock.first,
                facts.termination_at,
                facts.ended_at,
            ),
            blamed_peers=peers_named(
                diagnostics, termination.chain() if termination is not None else []
            ),
            **common,
        )
        chunks = [
            ErrorChunk(
                runner_id=config.runner_id,
                task_id=task_id,
                category=verdict.category,
                subcategory=verdict.subcategory,
                error=f"runner {config.name!r} failed while this task ran: {status.summary}",
            )
            for task_id in facts.in_flight
        ]
    clean = type(status).model_validate(redactor.report_fields(status.model_dump(mode="json")))
    clean_chunks = [
        ErrorChunk.model_validate(redactor.value(c.model_dump(mode="json"))) for c in chunks
    ]
    return clean, clean_chunks


def _oom_killed(
    before: OomCounters | None, exit_info: ExitInfo, child: ChildProcess | None
) -> bool | None:
    """OOM-kill evidence from a cgroup shared with others, for a death by signal (the worker's or
    a child's), else None. A shell's 128+N exit status counts as a death by signal.

    Used only when the runner has no memory cgroup of its own, whose count is exact instead.
    """
    by_signal = exit_info.signal is not None or (exit_info.code or 0) > 128
    if before is None or not (by_signal or child is not None):
        return None
    after = read_cgroup_oom_counters(before.cgroup, hierarchy=before.hierarchy)
    return oom_evidence(before, after)


def _termination(facts: AttemptFacts) -> TerminationInfo | None:
    """The structured error from the channel, else the traceback recovered from stderr."""
    sent = facts.termination_error
    if sent is not None:
        data = sent.model_dump(exclude={"kind", "seq"})
        return TerminationInfo(**data, source="channel")
    parsed = facts.capture.result()
    if parsed is None:
        return None
    return TerminationInfo(**parsed.model_dump(), phase="unknown", source="stderr")


def _counted_by_own_cgroup(verdict: Verdict, containment: Containment | None) -> str | None:
    """What the runner's own cgroup counted, when the verdict rests on it: the line to show.

    A contained fork bomb usually ends by a watchdog or a generic EAGAIN, and a child's OOM kill
    by the parent's own exit: the kernel's count says more than either.
    """
    if containment is None:
        return None
    if verdict.subcategory == "pids_max":
        return containment.pids_refusals()
    if verdict.subcategory == "oom_killed" and containment.oom_kills:
        limit = containment.memory_max_bytes
        under = f" under its {limit / 2**20:g} MiB limit" if limit else ""
        return (
            f"the kernel OOM killer killed {counted(containment.oom_kills, 'process')} of the "
            f"runner's tree{under}"
        )
    return None


def _summary(
    verdict: Verdict,
    facts: AttemptFacts,
    exit_info: ExitInfo,
    termination: TerminationInfo | None,
    redactor: Redactor,
    child: ChildProcess | None,
) -> str:
    """One line for a human: ``gpu/oom: CUDA out of memory. Tried to allocate 2.00 GiB``.

    A child's death says whose: ``crash/segfault in child toktx (pid 4242): ...``.
    """
    label = verdict.category + (f"/{verdict.subcategory}" if verdict.subcategory else "")
    if child is not None:
        label += f" in {child.label()}"
    config = facts.config
    stuck = facts.snapshot.blocked_in if facts.snapshot is not None else None
    # A child's crash that a watchdog only noticed later (tier 0 of the rules) explains itself.
    timed_out = facts.timeout if not (child is not None and verdict.evidence) else None
    counted = _counted_by_own_cgroup(verdict, facts.containment)
    if counted is not None:
        because = counted
    elif timed_out == "deadline":
        where = f"stopped in {stuck.describe()}" if stuck else "stopped"
        because = f"still running after the {config.deadline:g} s deadline; {where}"
    elif timed_out == "no_progress":
        where = f"blocked in {stuck.describe()}" if stuck else "stopped"
        because = f"no event or output for {config.no_progress_timeout:g} s; {where}"
    elif verdict.evidence:
        because = verdict.evidence
    elif child is not None and child.exit is not None:
        because = child.exit
    elif termination is not None:
        because = termination.summary()
    else:
        because = exit_info.description
    first_line = summary_line(because) or exit_info.description
    # "python/KeyError: KeyError: 'x'" says the type twice; keep it once.
    first_line = first_line.removeprefix(f"{verdict.subcategory}: ")
    if (
        stuck
        and facts.snapshot
        and not facts.snapshot.before_stop
        and exit_info.signal == "SIGTERM"
    ):
        first_line += f"; stopped in {stuck.describe()}"  # by someone else: a launcher, a pod
    # Redact before cutting: half a secret no longer has a shape the redactor recognises.
    return f"{label}: {redactor.text(first_line)[:300]}"
