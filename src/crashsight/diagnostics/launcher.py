"""A whole torchrun job behind one ``crashsight run``: the launcher's stderr split by rank.

``crashsight run -- torchrun --nproc-per-node 4 train.py`` supervises one process, the launcher,
whose stderr interleaves every rank's. torchrun's own verdict, ``ChildFailedError``, names as root
cause the failure it observed first, in whole seconds, which is often a victim. `LauncherSplitter`
is a collector line sink that reads torchrun's texts, cited from torch 2.x:

* ``[rank3]: Traceback ...``: the prefix ``_distributed_excepthook`` adds to an uncaught
  exception's lines once the process group exists (torch/distributed/distributed_c10d.py,
  ``init_process_group``);
* ``[default3]:...``: the prefix of ``--tee``/``--redirects`` output, ``[{role}{local_rank}]:``
  (torch/distributed/elastic/multiprocessing/tail_log.py, ``TailLog.start``);
* ``failed (exitcode: -11) local_rank: 1 (pid: 123) of binary: ...``: the agent noticing the
  first failure (torch/distributed/elastic/multiprocessing/api.py, ``SubprocessContext._poll``);
* ``Sending process 123 closing signal SIGTERM``: the launcher stopping the survivors
  (torch/distributed/elastic/multiprocessing/api.py, ``SubprocessContext._close``);
* the failure summary after ``ChildFailedError:``, one block per failed rank with ``rank``,
  ``exitcode``, ``error_file`` and ``traceback``, the first observed under ``Root Cause (first
  observed failure):`` (torch/distributed/elastic/multiprocessing/errors/__init__.py,
  ``_FAILURE_FORMAT_TEMPLATE`` and ``_MSG_FORMAT_TEMPLATE``).

Each rank's lines go to a collector of its own, so each rank is classified like a runner of its
own, with the exit the summary gives it. A rank the launcher stopped with a signal, and that
printed no error of its own, is collateral. `decide_root_cause` then names the root cause, the
same decision ``crashsight aggregate`` and a group of runners make.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .catalogue import CATALOGUE, enrich_fields
from .classify import Classifier, Facts
from .collector import StderrCollector
from .jobverdict import (
    RankOutcome,
    Role,
    RootCause,
    decide_root_cause,
    peers_named,
    role_of,
)
from .models import Diagnostic, Signature
from .tracebacks import TracebackCapture

__all__ = [
    "LauncherJob",
    "LauncherSplitter",
    "RankVerdict",
    "SummaryFailure",
    "is_torch_launcher",
]

#: ``[rank3]: text`` from torch's distributed excepthook (also ``[rank3]:[W... c10d]`` logs).
_RANK_PREFIX = re.compile(r"^\[rank(?P<rank>\d+)\]: ?(?P<text>.*)$")
#: ``[default3]:text`` from ``--tee``: role name, then the LOCAL rank.
_TEE_PREFIX = re.compile(r"^\[(?P<role>[A-Za-z_][\w.-]*?)(?P<local>\d+)\]:(?P<text>.*)$")
#: The agent's line when it notices the first failure (api.py, ``SubprocessContext._poll``).
_NOTICED = re.compile(r"failed \(exitcode: -?\d+\) local_rank: \d+ \(pid: (?P<pid>\d+)\)")
_CLOSING = re.compile(r"Sending process (?P<pid>\d+) closing signal (?P<signal>SIG[A-Z]+)")
_SUMMARY_START = "ChildFailedError:"
_ROOT_HEADER = "Root Cause (first observed failure):"
_ENTRY = re.compile(r"^\[(?P<idx>\d+)\]:$")
_FIELD = re.compile(r"^  (?P<key>time|host|rank|exitcode|error_file|traceback)\s*: ?(?P<value>.*)$")
_RANK_FIELD = re.compile(r"^(?P<rank>\d+) \(local_rank: (?P<local>\d+)\)")
_EXIT_FIELD = re.compile(r"^(?P<code>-?\d+) \(pid: (?P<pid>\d+)\)")
_NOT_AVAILABLE = "<N/A>"

#: Ranks followed one by one; a launcher with more local ranks is cut here, and says so.
MAX_RANKS = 1024
#: Lines kept per rank for its tail (the collector's diagnostics cover every line).
RANK_TAIL_LINES = 100


def is_torch_launcher(argv: Sequence[str]) -> bool:
    """Whether ``argv`` starts torchrun: ``torchrun ...`` or ``python -m torch.distributed.run``.

    ``torch.distributed.launch`` (deprecated, the same agent underneath) counts too.
    """
    if not argv:
        return False
    if os.path.basename(argv[0]) == "torchrun":
        return True
    if not os.path.basename(argv[0]).startswith("python"):
        return False
    for flag, module in itertools.pairwise(argv[1:]):
        if flag == "-m":
            return module in ("torch.distributed.run", "torch.distributed.launch")
        if not flag.startswith("-"):
            return False  # the script: what follows are its arguments
    return False


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SummaryFailure(_Model):
    """One block of torchrun's failure summary."""

    rank: int
    local_rank: int
    host: str | None = None
    time: str | None = Field(default=None, description="As torchrun prints it, whole seconds.")
    exitcode: int
    pid: int
    error_file: str | None = None
    traceback: list[str] = Field(default_factory=list)
    first_observed: bool = Field(description="Listed under 'Root Cause (first observed failure)'.")


class RankVerdict(_Model):
    """How one rank of the launched job ended, and its part in the job's failure."""

    rank: int
    category: str | None = None
    subcategory: str | None = None
    role: Role | None = None
    summary: str


class LauncherJob(_Model):
    """The job's verdict from the launcher's output: every rank, and the root cause."""

    ranks: list[RankVerdict]
    root_cause_rank: int | None
    root_cause: RootCause | None
    hint: str | None = Field(default=None, description="The root-cause rank's verdict's hint.")
    launcher_root_cause_rank: int | None = Field(
        description="The rank torchrun named under 'Root Cause (first observed failure)'."
    )
    notes: list[str] = Field(default_factory=list)


@dataclass
class _Rank:
    """What one rank printed through the launcher."""

    collector: StderrCollector
    capture: TracebackCapture
    first_error_at: datetime | None = None


@dataclass
class LauncherSplitter:
    """A collector line sink that splits torchrun's stderr by rank; `job` gives the verdict.

    Args:
        signatures: The catalogue each rank's lines are matched against.
        clock: The time a line is seen; a rank's first error time comes from it, with
            microseconds, where torchrun's summary has whole seconds.
    """

    signatures: Sequence[Signature] = CATALOGUE
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _ranks: dict[int, _Rank] = field(default_factory=dict)
    _local: dict[int, _Rank] = field(default_factory=dict)
    _tee_offset: int | None = None
    _closed_by_launcher: dict[int, str] = field(default_factory=dict)
    _summary: list[SummaryFailure] = field(default_factory=list)
    _in_summary: bool = False
    _in_root: bool = False
    _entry: dict[str, str] | None = None
    _entry_traceback: list[str] = field(default_factory=list)
    _noticed_at: dict[int, datetime] = field(default_factory=dict)  # by pid
    _dropped_ranks: int = 0
    _hints: dict[int, str | None] = field(default_factory=dict)

    #: The collector feeds this sink only from lines holding one of these while it is inactive.
    triggers = ("]:", "closing signal", "failed (exitcode: ", _SUMMARY_START)

    @property
    def active(self) -> bool:
        """Inside the failure summary every line matters, prefixed or not."""
        return self._in_summary

    def __call__(self, line: str) -> None:
        """Consume one line of the launcher's stderr."""
        if self._in_summary:
            self._summary_line(line)
            return
        noticed = _NOTICED.search(line)
        if noticed:
            self._noticed_at.setdefault(int(noticed["pid"]), self.clock())
            return
        closing = _CLOSING.search(line)
        if closing:
            self._closed_by_launcher[int(closing["pid"])] = closing["signal"]
            return
        tee = _TEE_PREFIX.match(line)
        if tee is not None and tee["role"] != "rank":
            local, text = int(tee["local"]), tee["text"]
            inner = _RANK_PREFIX.match(text)
            if inner is None:
                # A local rank: mapped to its global rank by the job's end, when this node's
                # first rank is known (from a line with both prefixes, or the summary).
                self._rank_line(local, text, self._local)
                return
            self._tee_offset = int(inner["rank"]) - local
            line = text
        prefixed = _RANK_PREFIX.match(line)
        if prefixed is not None:
            self._rank_line(int(prefixed["rank"]), prefixed["text"])
        elif _SUMMARY_START in line:
            # torchrun's own exception, never a rank's (a rank's lines carry its prefix).
            self._in_summary = True

    def _rank(self, rank: int, table: dict[int, _Rank]) -> _Rank | None:
        state = table.get(rank)
        if state is None:
            if len(table) >= MAX_RANKS:
                self._dropped_ranks += 1
                return None
            capture = TracebackCapture()
            collector = StderrCollector(
                self.signatures,
                tail_lines=RANK_TAIL_LINES,
                line_sinks=[capture],
                enrich=enrich_fields,
                clock=self.clock,
            )
            state = table[rank] = _Rank(collector, capture)
        return state

    def _rank_line(self, rank: int, text: str, table: dict[int, _Rank] | None = None) -> None:
        state = self._rank(rank, self._ranks if table is None else table)
        if state is None:
            return
        state.collector.feed(text.encode() + b"\n")
        if state.first_error_at is None and (
            state.capture.active or any(not d.evidence_only for d in state.collector.diagnostics)
        ):
            state.first_error_at = self.clock()

    def _summary_line(self, line: str) -> None:
        if _ROOT_HEADER in line:
            self._close_entry()
            self._in_root = True
            return
        if line.startswith("==="):
            self._close_entry()
            if self._in_root:
                self._in_summary = False
            return
        if line.startswith("---"):
            self._close_entry()
            return
        if _ENTRY.match(line):
            self._close_entry()
            self._entry, self._entry_traceback = {}, []
            return
        found = _FIELD.match(line)
        if self._entry is None:
            return
        if found is not None and not self._entry_traceback:
            self._entry[found["key"]] = found["value"]
            if found["key"] == "traceback":
                self._entry_traceback.append(found["value"])
        elif self._entry_traceback and line.startswith("  "):
            # A py_callstack from an error file: torchrun indents its lines by two spaces.
            self._entry_traceback.append(line[2:])

    def _close_entry(self) -> None:
        entry, self._entry = self._entry, None
        if not entry:
            return
        ranks = _RANK_FIELD.match(entry.get("rank", ""))
        exits = _EXIT_FIELD.match(entry.get("exitcode", ""))
        if ranks is None or exits is None:
            return
        error_file = entry.get("error_file")
        self._summary.append(
            SummaryFailure(
                rank=int(ranks["rank"]),
                local_rank=int(ranks["local"]),
                host=entry.get("host"),
                time=entry.get("time"),
                exitcode=int(exits["code"]),
                pid=int(exits["pid"]),
                error_file=None if error_file in (None, _NOT_AVAILABLE) else error_file,
                traceback=list(self._entry_traceback),
                first_observed=self._in_root,
            )
        )

    @property
    def summary(self) -> list[SummaryFailure]:
        """torchrun's failure summary, as parsed so far."""
        return list(self._summary)

    def job(self, classifier: Classifier) -> LauncherJob | None:
        """The job's verdict, or None when the output holds no rank at all (not a torch job)."""
        self._close_entry()
        by_rank = {failure.rank: failure for failure in self._summary}
        for failure in self._summary:
            if failure.traceback and failure.error_file is not None:
                # The error file's traceback (the worker's @record, or crashsight run's verdict).
                for text in failure.traceback:
                    self._rank_line(failure.rank, text)
        offset = self._tee_offset
        if offset is None:
            offset = self._summary[0].rank - self._summary[0].local_rank if self._summary else 0
        states: dict[int, list[_Rank]] = {rank: [state] for rank, state in self._ranks.items()}
        for local, state in self._local.items():
            states.setdefault(local + offset, []).append(state)
        ranks = sorted({*states, *by_rank})
        if not ranks:
            return None
        outcomes = [
            self._outcome(rank, by_rank.get(rank), states.get(rank, []), classifier)
            for rank in ranks
        ]
        verdict = decide_root_cause(outcomes, world_size=max(ranks) + 1)
        root, roles, notes = verdict.root_cause, list(verdict.roles), []
        if root is not None and not any(o.status == "failed" for o in outcomes):
            # Every rank was stopped from outside (crashsight's own watchdog stopping the
            # launcher, say) with no error of its own: no rank to blame.
            notes.append("every rank was stopped with no error of its own; none is blamed")
            root, roles = None, [role_of(outcome) for outcome in outcomes]
        verdicts = [
            RankVerdict(
                rank=rank,
                category=outcome.category,
                subcategory=outcome.subcategory,
                role=role,
                summary=outcome.summary,
            )
            for rank, outcome, role in zip(ranks, outcomes, roles, strict=True)
        ]
        launcher_pick = next((f.rank for f in self._summary if f.first_observed), None)
        if launcher_pick is not None and root is not None and root.rank != launcher_pick:
            notes.append(
                f"torchrun named rank {launcher_pick} as its root cause (first observed "
                f"failure); crashsight names rank {root.rank}: {'; '.join(root.basis)}"
            )
        if self._dropped_ranks:
            notes.append(f"lines of ranks beyond the first {MAX_RANKS} were not split")
        return LauncherJob(
            ranks=verdicts,
            root_cause_rank=None if root is None else root.rank,
            root_cause=root,
            hint=None if root is None or root.rank is None else self._hints.get(root.rank),
            launcher_root_cause_rank=launcher_pick,
            notes=notes,
        )

    def _outcome(
        self,
        rank: int,
        failure: SummaryFailure | None,
        states: list[_Rank],
        classifier: Classifier,
    ) -> RankOutcome:
        found: dict[str, Diagnostic] = {}
        for state in states:
            for diagnostic in state.collector.diagnostics:
                found.setdefault(diagnostic.id, diagnostic)
        diagnostics = list(found.values())
        termination = next((t for s in states if (t := s.capture.result()) is not None), None)
        tail = [line for state in states for line in state.collector.tail]
        errors_at = [s.first_error_at for s in states if s.first_error_at is not None]
        exit_code, signal_name = _exit_of(failure)
        status: Literal["succeeded", "failed", "cancelled"] = "failed"
        if failure is None and termination is None and not diagnostics:
            # Not in the summary and no error of its own: it ended well.
            status = "succeeded"
        stopped = (
            failure is not None
            and signal_name is not None
            and self._closed_by_launcher.get(failure.pid) == signal_name
        )
        category: str | None = None
        subcategory: str | None = None
        role: Role | None = None
        if status == "succeeded":
            summary = "succeeded: not among the launcher's failures"
        elif stopped and termination is None and not diagnostics:
            # Nothing of its own: the signal the launcher sent is all there is (collateral).
            status = "cancelled"
            summary = f"cancelled: stopped by the launcher ({signal_name}) after a rank failed"
        else:
            verdict = classifier.classify(
                Facts(
                    termination_error=termination,
                    diagnostics=diagnostics,
                    stderr_lines=tail,
                    exit_code=exit_code,
                    signal=signal_name,
                )
            )
            category, subcategory, role = verdict.category, verdict.subcategory, verdict.role
            self._hints[rank] = verdict.hint
            label = category + (f"/{subcategory}" if subcategory else "")
            because = verdict.evidence or (termination.summary() if termination else None)
            because = because or (failure.traceback[0] if failure and failure.traceback else "")
            first = because.strip().splitlines()[0] if because.strip() else "failed"
            summary = f"{label}: {first.removeprefix(f'{subcategory}: ')[:300]}"
        first_error = min(errors_at, default=None)
        return RankOutcome(
            name=f"rank {rank}",
            rank=rank,
            host=failure.host if failure else None,
            status=status,
            category=category,
            subcategory=subcategory,
            summary=summary,
            role=role,
            # A rank that died silently (a signal): when the launcher noticed, if it said so.
            first_error_at=first_error or self._noticed_at.get(failure.pid if failure else -1),
            blamed_peers=peers_named(diagnostics, termination.chain() if termination else []),
        )


def _exit_of(failure: SummaryFailure | None) -> tuple[int | None, str | None]:
    """torchrun's exitcode as (status, signal): negative for a signal (``-11``), else the status.

    A status of 128+N (139) is how a wrapper such as a shell or ``crashsight run`` reports that
    its command died of signal N, so the signal is given with it.
    """
    if failure is None:
        return None, None
    code = failure.exitcode
    number = -code if code < 0 else code - 128 if 128 < code < 128 + signal.NSIG else None
    if number is None:
        return code, None
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"SIG{number}"
    return (None if code < 0 else code), name
