"""The job verdict: which rank of a distributed job failed first, and which failures followed.

When one rank of a job dies, its peers fail too (gloo resets, NCCL watchdog timeouts, a
launcher's SIGTERM), and those consequences outnumber the cause N-1 to 1. This module is the
pure decision that names the root cause from every rank's outcome; ``crashsight aggregate`` and a
supervised group of runners both call it, so they always agree.

Each rank's own verdict already carries a ``role`` (data from the rules and the catalogue, see
``default_rules.toml``): ``root_cause`` (its own fault), ``consequence`` (a peer's failure reached
it) or ``collateral`` (stopped by a signal it did not cause). `decide_root_cause` then decides, in
this order, writing each step into ``basis``:

1. a ``root_cause`` role beats consequences and collateral;
2. among those left, the earliest ``first_error_at``;
3. the peers that consequence errors name (a rank, or the host:port a rank listened on) confirm
   that pick, or break a tie;
4. with no root-cause role, a rank of ``world_size`` that wrote no report at all (its node died)
   is named;
5. with only consequences and collateral, the rank the others blame, else a rank that never
   reached the collective its peers failed in (collateral, no comm error of its own; it hung),
   else the one that stopped making progress first. A rank named because it hung (stopped after
   its peers' comm errors) gets a ``timeout/hang`` verdict and its ``blocked_in``; one killed
   from outside before them went first and keeps its own verdict.

Nothing here reads files or clocks: the same outcomes always give the same verdict.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..protocol import ExceptionInfo
from .catalogue import CATALOGUE, match_line
from .models import ROLES, Diagnostic, Role

__all__ = [
    "ROLES",
    "JobVerdict",
    "RankOutcome",
    "Role",
    "RootCause",
    "decide_root_cause",
    "peers_named",
    "role_of",
    "who",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RankOutcome(_Model):
    """How one rank (one report, or one runner of a group) ended: the decision's whole input."""

    name: str
    path: str | None = Field(default=None, description="The report file, when read from one.")
    rank: int | None = None
    world_size: int | None = None
    host: str | None = None
    status: Literal["succeeded", "failed", "cancelled"]
    category: str | None = None
    subcategory: str | None = None
    summary: str = ""
    role: Role | None = Field(
        default=None,
        description="The rank's own role; None for a success, or a report that predates roles "
        "(then read from its status and category).",
    )
    first_error_at: datetime | None = None
    ended_at: datetime | None = None
    blamed_peers: list[str] = Field(
        default_factory=list,
        description="Peers the rank's consequence errors name: 'rank 3', or 'host:port'.",
    )
    last_progress_at: datetime | None = None
    blocked_in: str | None = Field(default=None, description="Where it was stuck, if it hung.")
    addresses: list[str] = Field(
        default_factory=list, description="host:port addresses this rank listened on, if known."
    )


class RootCause(_Model):
    """The rank the job failed because of, and why crashsight says so.

    ``summary`` starts with ``category/subcategory: `` like every verdict crashsight writes.
    """

    path: str | None = None
    name: str
    rank: int | None = None
    host: str | None = None
    category: str
    subcategory: str | None = None
    summary: str
    basis: list[str] = Field(description="Each step of the decision, in order.")
    blocked_in: str | None = None
    missing: bool = Field(default=False, description="The rank wrote no report at all.")


class JobVerdict(_Model):
    """The decision over every rank: the root cause, and each outcome's role."""

    root_cause: RootCause | None = Field(description="None when no rank failed.")
    roles: list[Role | None] = Field(
        description="The role of each outcome in the job, in the order given; None for a "
        "success. The root cause's is root_cause even when its own verdict said otherwise."
    )
    root_index: int | None = Field(
        default=None, description="Index of the root-cause outcome; None for a missing rank."
    )
    missing_ranks: list[int] = Field(default_factory=list)
    counts: dict[str, int] = Field(
        default_factory=dict, description="Failed outcomes per role (root_cause, consequence, ...)."
    )
    consequence_classes: dict[str, int] = Field(
        default_factory=dict, description="category/subcategory of the consequences, most first."
    )


#: Missing ranks are listed by number up to this many; a verdict over 4096 ranks stays small.
MAX_MISSING_LISTED = 64

#: Peers kept per rank: one rank of a large job may name many, the decision needs a few.
MAX_PEERS = 16

#: Consequence entries whose text names the peer (a ``peer`` group).
_PEER_SIGNATURES = tuple(
    s for s in CATALOGUE if s.role == "consequence" and "(?P<peer>" in s.pattern
)


def peers_named(
    diagnostics: Iterable[Diagnostic], chain: Iterable[ExceptionInfo] = ()
) -> list[str]:
    """The peers a rank's consequence errors name, as printed (``[10.0.0.5]:29500``), first first.

    Read from the ``peer`` field of its comm diagnostics (warnings included: a TCPStore warning
    names the store's host even when the rank survives it), then from the messages of its
    termination error's chain, which may never have reached stderr.
    """
    found: dict[str, None] = {}
    for diagnostic in diagnostics:
        if diagnostic.role == "consequence" and "peer" in diagnostic.fields:
            found[diagnostic.fields["peer"]] = None
    for info in chain:
        for line in info.summary().splitlines():
            for signature in _PEER_SIGNATURES:
                fields = match_line(signature, line)
                if fields is not None and "peer" in fields:
                    found[fields["peer"]] = None
    return list(found)[:MAX_PEERS]


def role_of(outcome: RankOutcome) -> Role | None:
    """The outcome's role, reading reports that predate roles by their status and category.

    A cancelled rank was stopped from outside (a launcher's signal reached crashsight itself):
    collateral. An old failed report with a ``comm`` verdict is a consequence, anything else its
    own fault, as the built-in rules would say today.
    """
    if outcome.status == "succeeded":
        return None
    if outcome.role is not None:
        return outcome.role
    if outcome.status == "cancelled":
        return "collateral"
    return "consequence" if outcome.category == "comm" else "root_cause"


def decide_root_cause(
    outcomes: Sequence[RankOutcome], *, world_size: int | None = None
) -> JobVerdict:
    """Name the root cause of a job from every rank's outcome (see the module docstring).

    Args:
        outcomes: one per report or runner, in any order.
        world_size: how many ranks the job had; defaults to the largest ``world_size`` an
            outcome states. Ranks of it without an outcome are reported as missing.

    Returns:
        The verdict; ``root_cause`` is None only when nothing failed and no rank is missing.
    """
    roles = [role_of(o) for o in outcomes]
    size = world_size or max((o.world_size or 0 for o in outcomes), default=0)
    present = {o.rank for o in outcomes if o.rank is not None}
    missing = [r for r in range(size) if r not in present]
    failed = [i for i, role in enumerate(roles) if role is not None]
    counts: Counter[Role] = Counter(role for role in roles if role is not None)
    consequence_classes = Counter(_label(outcomes[i]) for i in failed if roles[i] == "consequence")
    verdict = JobVerdict(
        root_cause=None,
        roles=roles,
        missing_ranks=missing,
        counts={role: counts[role] for role in ROLES if counts[role]},
        consequence_classes=dict(consequence_classes.most_common()),
    )
    if not failed and not missing:
        return verdict
    votes = _blame_votes(outcomes, [i for i in failed if roles[i] == "consequence"], set(failed))
    basis: list[str] = []
    roots = [i for i in failed if roles[i] == "root_cause"]
    if roots:
        basis.append(_roots_step(outcomes, roots, counts))
        if missing:
            basis.append(f"{len(missing)} rank(s) wrote no report: {_listed(missing)}")
        index = _earliest(outcomes, roots, votes, basis)
        return _named(verdict, index, _cause(outcomes[index], basis))
    if missing:
        return verdict.model_copy(update={"root_cause": _missing_cause(outcomes, missing, basis)})
    basis.append(
        f"no rank failed of its own fault: {counts['consequence']} consequence, "
        f"{counts['collateral']} collateral"
    )
    index, hung = _suspect(outcomes, failed, roles, votes, basis)
    cause = _cause(outcomes[index], basis)
    if hung:
        cause = _hung(cause, outcomes[index])
    return _named(verdict, index, cause)


def _named(verdict: JobVerdict, index: int, cause: RootCause) -> JobVerdict:
    """The verdict with ``cause`` at ``index``: in the job's view that outcome is the root cause,
    whatever its own verdict said (a hung rank stopped by the launcher was collateral)."""
    roles = list(verdict.roles)
    roles[index] = "root_cause"
    return verdict.model_copy(update={"root_cause": cause, "root_index": index, "roles": roles})


def _label(outcome: RankOutcome) -> str:
    category = outcome.category or "unknown"
    return f"{category}/{outcome.subcategory}" if outcome.subcategory else category


def who(outcome: RankOutcome) -> str:
    """``rank 2 (node-a)``, or the outcome's name when its rank is unknown."""
    label = f"rank {outcome.rank}" if outcome.rank is not None else repr(outcome.name)
    return f"{label} ({outcome.host})" if outcome.host else label


def _roots_step(outcomes: Sequence[RankOutcome], roots: list[int], counts: Counter[Role]) -> str:
    others = ", ".join(
        f"{counts[role]} {role.replace('_', ' ')}" for role in ROLES[1:] if counts[role]
    )
    rest = f" (beats {others})" if others else ""
    if len(roots) == 1:
        outcome = outcomes[roots[0]]
        return f"{who(outcome)} is the only failure of its own fault: {_label(outcome)}{rest}"
    return f"{len(roots)} ranks failed of their own fault{rest}"


def _blame_votes(
    outcomes: Sequence[RankOutcome], accusers: list[int], failed: set[int]
) -> Counter[int]:
    """How many consequence outcomes name each failed outcome as their peer (rank or address).

    A bare host names every rank on that host; it counts only where it names exactly one.
    """
    by_rank = {o.rank: i for i, o in enumerate(outcomes) if o.rank is not None}
    by_address = {_address(a): i for i, o in enumerate(outcomes) for a in o.addresses}
    by_host: dict[str, list[int]] = {}
    for i, o in enumerate(outcomes):
        if o.host:
            by_host.setdefault(o.host, []).append(i)
    votes: Counter[int] = Counter()
    for accuser in accusers:
        named: set[int] = set()
        for peer in outcomes[accuser].blamed_peers:
            target = _resolve(peer, by_rank, by_address, by_host)
            if target is not None and target != accuser and target in failed:
                named.add(target)
        votes.update(named)
    return votes


def _address(text: str) -> str:
    """``[10.0.0.5]:29500`` and ``10.0.0.5:29500`` are the same address."""
    return text.strip().replace("[", "").replace("]", "")


def _resolve(
    peer: str,
    by_rank: dict[int, int],
    by_address: dict[str, int],
    by_host: dict[str, list[int]],
) -> int | None:
    text = peer.strip()
    if text.startswith("rank "):
        number = text.removeprefix("rank ").strip()
        return by_rank.get(int(number)) if number.isdigit() else None
    address = _address(text)
    if address in by_address:
        return by_address[address]
    on_host = by_host.get(address.rpartition(":")[0] or address, [])
    return on_host[0] if len(on_host) == 1 else None


def _earliest(
    outcomes: Sequence[RankOutcome], candidates: list[int], votes: Counter[int], basis: list[str]
) -> int:
    """Pick the earliest first error among ``candidates``; blame confirms or breaks a tie."""
    if len(candidates) == 1:
        index = candidates[0]
        _blame_step(outcomes, index, votes, basis)
        return index
    timed = sorted(
        (i for i in candidates if outcomes[i].first_error_at is not None),
        key=lambda i: _at(outcomes[i].first_error_at),
    )
    if timed:
        first = _at(outcomes[timed[0]].first_error_at)
        tied = [i for i in timed if _at(outcomes[i].first_error_at) == first]
    else:
        tied = list(candidates)
    if len(tied) == 1:
        index = tied[0]
        runner_up = timed[1] if len(timed) > 1 else None
        lead = ""
        if runner_up is not None:
            gap = _at(outcomes[runner_up].first_error_at) - first
            lead = f", {gap.total_seconds():.6f} s before {who(outcomes[runner_up])}"
        basis.append(f"earliest first error: {who(outcomes[index])} at {_iso(first)}{lead}")
        _blame_step(outcomes, index, votes, basis)
        return index
    most = max(tied, key=lambda i: (votes[i], -i))
    names = ", ".join(who(outcomes[i]) for i in tied[:5])
    when = f"first errors at the same time ({_iso(first)})" if timed else "no error times"
    if votes[most]:
        basis.append(
            f"{len(tied)} candidates with {when}: {names}; {votes[most]} consequence errors "
            f"name {who(outcomes[most])}, which breaks the tie"
        )
    else:
        basis.append(f"{len(tied)} candidates with {when}: {names}; taking the first listed")
    return most


def _blame_step(
    outcomes: Sequence[RankOutcome], index: int, votes: Counter[int], basis: list[str]
) -> None:
    if not votes:
        return
    if votes[index]:
        basis.append(f"confirmed: {votes[index]} consequence errors name {who(outcomes[index])}")
        return
    blamed, count = votes.most_common(1)[0]
    basis.append(
        f"not confirmed: consequence errors name {who(outcomes[blamed])} ({count}), "
        f"not {who(outcomes[index])}"
    )


def _missing_cause(
    outcomes: Sequence[RankOutcome], missing: list[int], basis: list[str]
) -> RootCause:
    basis.append(
        f"no rank failed of its own fault, and {len(missing)} rank(s) wrote no report at all: "
        f"{_listed(missing)}"
    )
    blamed = Counter(
        int(p.removeprefix("rank "))
        for o in outcomes
        for p in o.blamed_peers
        if p.startswith("rank ") and p.removeprefix("rank ").isdigit()
    )
    rank = next((r for r, _ in blamed.most_common() if r in missing), missing[0])
    if blamed[rank]:
        basis.append(f"{blamed[rank]} consequence errors name rank {rank}")
    summary = (
        "missing/no_report: no report from this rank: its process, crashsight or its node "
        "died without a trace"
    )
    return RootCause(
        name=f"rank {rank}",
        rank=rank,
        category="missing",
        subcategory="no_report",
        summary=summary,
        basis=basis,
        missing=True,
    )


def _listed(ranks: list[int]) -> str:
    listed = ", ".join(map(str, ranks[:MAX_MISSING_LISTED]))
    extra = len(ranks) - MAX_MISSING_LISTED
    return f"{listed} and {extra} more" if extra > 0 else listed


def _suspect(
    outcomes: Sequence[RankOutcome],
    failed: list[int],
    roles: list[Role | None],
    votes: Counter[int],
    basis: list[str],
) -> tuple[int, bool]:
    """Among consequences and collateral only: returns (index, whether it hung)."""
    consequences = [i for i in failed if roles[i] == "consequence"]
    peers_failed = min((_at(_when(outcomes[i])) for i in consequences), default=_NEVER)
    if votes:
        blamed, count = votes.most_common(1)[0]
        basis.append(f"{count} consequence errors name {who(outcomes[blamed])}")
        return blamed, _stopped_after(outcomes[blamed], roles[blamed], peers_failed)
    collateral = [i for i in failed if roles[i] == "collateral"]
    if collateral and consequences:
        index = _stalled_first(outcomes, collateral)
        if _stopped_after(outcomes[index], roles[index], peers_failed):
            basis.append(
                f"{who(outcomes[index])} shows no communication error of its own while "
                f"{len(consequences)} peers failed in a collective: it never reached it"
            )
            return index, True
        basis.append(
            f"{who(outcomes[index])} was stopped before any peer's communication error "
            f"(first at {_iso(peers_failed)}): it went first, killed from outside"
        )
        return index, False
    index = _stalled_first(outcomes, failed)
    stalled = outcomes[index].last_progress_at
    if stalled is not None:
        basis.append(f"stopped making progress first: {who(outcomes[index])} at {_iso(stalled)}")
    else:
        basis.append(f"nothing tells the ranks apart; taking the earliest: {who(outcomes[index])}")
    return index, False


def _when(outcome: RankOutcome) -> datetime | None:
    """When an outcome's failure showed: its first error, else its end."""
    return outcome.first_error_at or outcome.ended_at


def _stopped_after(outcome: RankOutcome, role: Role | None, peers_failed: datetime) -> bool:
    """Whether a collateral rank was stopped after its peers' comm errors: it hung, then.

    A rank killed from outside before any peer failed (SIGKILL without OOM evidence) went first;
    it is named with its own verdict. Without times, a collateral rank is taken to have hung.
    """
    if role != "collateral":
        return False
    when = _when(outcome)
    return when is None or peers_failed == _NEVER or _at(when) >= peers_failed


def _stalled_first(outcomes: Sequence[RankOutcome], candidates: list[int]) -> int:
    def key(i: int) -> tuple[datetime, datetime, int]:
        o = outcomes[i]
        return (_at(o.last_progress_at), _at(o.first_error_at), i)

    return min(candidates, key=key)


def _hung(cause: RootCause, outcome: RankOutcome) -> RootCause:
    where = f" (blocked in {outcome.blocked_in})" if outcome.blocked_in else ""
    return cause.model_copy(
        update={
            "category": "timeout",
            "subcategory": "hang",
            "summary": f"timeout/hang: hung before the collective its peers failed in{where}, "
            "until it was stopped",
        }
    )


def _cause(outcome: RankOutcome, basis: list[str]) -> RootCause:
    return RootCause(
        path=outcome.path,
        name=outcome.name,
        rank=outcome.rank,
        host=outcome.host,
        category=outcome.category or "unknown",
        subcategory=outcome.subcategory,
        summary=outcome.summary,
        basis=basis,
        blocked_in=outcome.blocked_in,
    )


_NEVER = datetime.max


def _at(when: datetime | None) -> datetime:
    """Comparable time: naive UTC, with unknown times last."""
    if when is None:
        return _NEVER
    return when.replace(tzinfo=None) - (when.utcoffset() or timedelta(0))


def _iso(when: datetime) -> str:
    """A comparable (naive UTC) time as ``2026-11-29T20:33:21.123456Z``."""
    return when.isoformat(timespec="microseconds") + "Z"
