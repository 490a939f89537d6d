"""The job verdict: one root cause from many ranks' outcomes, whatever order they come in."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from crashsight.diagnostics.jobverdict import RankOutcome, decide_root_cause, role_of

T0 = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def outcome(
    rank: int,
    role: str | None,
    *,
    at: float | None = None,
    category: str = "comm",
    subcategory: str | None = "gloo",
    blames: tuple[str, ...] = (),
    host: str | None = None,
    progress: float | None = None,
    status: str = "failed",
    world_size: int | None = 3,
    blocked_in: str | None = None,
) -> RankOutcome:
    return RankOutcome.model_validate(
        {
            "name": f"rank{rank}",
            "path": f"r/rank{rank}.json",
            "rank": rank,
            "world_size": world_size,
            "host": host,
            "status": status,
            "category": category if status != "succeeded" else None,
            "subcategory": subcategory if status != "succeeded" else None,
            "summary": f"{category}/{subcategory}: rank {rank}",
            "role": role,
            "first_error_at": None if at is None else T0 + timedelta(seconds=at),
            "ended_at": T0 + timedelta(seconds=10),
            "blamed_peers": list(blames),
            "last_progress_at": None if progress is None else T0 + timedelta(seconds=progress),
            "blocked_in": blocked_in,
        }
    )


def every_order(outcomes: list[RankOutcome]) -> list[list[RankOutcome]]:
    return [list(p) for p in itertools.permutations(outcomes)]


def test_a_root_cause_role_beats_earlier_consequences() -> None:
    """The OOM rank is named even though its peers' gloo errors were timestamped first."""
    job = [
        outcome(0, "consequence", at=1.0),
        outcome(1, "root_cause", at=2.0, category="memory", subcategory="memory_error"),
        outcome(2, "consequence", at=0.5),
    ]
    for order in every_order(job):
        verdict = decide_root_cause(order)
        assert verdict.root_cause is not None
        assert (verdict.root_cause.rank, verdict.root_cause.category) == (1, "memory")
        assert verdict.counts == {"root_cause": 1, "consequence": 2}
        assert verdict.consequence_classes == {"comm/gloo": 2}
        assert "only failure of its own fault" in verdict.root_cause.basis[0]
        assert verdict.roles[verdict.root_index or 0] == "root_cause"


def test_the_earliest_of_several_root_causes_wins_in_any_order() -> None:
    """Two ranks failing of their own fault: the one whose first error came first is the cause."""
    job = [
        outcome(0, "root_cause", at=3.25, category="disk", subcategory="enospc"),
        outcome(1, "root_cause", at=3.000001, category="crash", subcategory="segfault"),
        outcome(2, "collateral", at=4.0, category="crash", subcategory="terminated"),
    ]
    for order in every_order(job):
        cause = decide_root_cause(order).root_cause
        assert cause is not None
        assert cause.rank == 1
        assert "earliest first error: rank 1" in cause.basis[1]
        assert "0.249999 s before rank 0" in cause.basis[1]


def test_blame_confirms_the_earliest_or_says_it_does_not() -> None:
    """The peers a consequence names are checked against the pick, and the check is recorded."""
    confirmed = decide_root_cause(
        [
            outcome(0, "root_cause", at=1.0, category="crash", subcategory="segfault"),
            outcome(1, "consequence", at=2.0, blames=("rank 0",)),
        ]
    ).root_cause
    assert confirmed is not None
    assert confirmed.basis[-1] == "confirmed: 1 consequence errors name rank 0"
    disputed = decide_root_cause(
        [
            outcome(0, "root_cause", at=1.0, category="crash", subcategory="segfault"),
            outcome(1, "root_cause", at=1.5, category="python", subcategory="ValueError"),
            outcome(2, "consequence", at=2.0, blames=("rank 1",)),
        ]
    ).root_cause
    assert disputed is not None
    assert disputed.rank == 0
    assert disputed.basis[-1].startswith("not confirmed: consequence errors name rank 1")


def test_blame_by_address_breaks_a_tie_of_equal_times() -> None:
    """Equal first-error times are a tie; the rank whose listening address peers name wins."""
    a = outcome(0, "root_cause", at=1.0, category="crash", subcategory="abort", host="node-a")
    b = outcome(1, "root_cause", at=1.0, category="crash", subcategory="abort", host="node-b")
    b = b.model_copy(update={"addresses": ["10.0.0.2:40001"]})
    accuser = outcome(2, "consequence", at=2.0, blames=("[10.0.0.2]:40001",), host="node-c")
    for order in every_order([a, b, accuser]):
        cause = decide_root_cause(order).root_cause
        assert cause is not None
        assert (cause.rank, cause.host) == (1, "node-b")
        assert "breaks the tie" in cause.basis[-1]


def test_a_bare_host_counts_only_when_one_failed_rank_lives_there() -> None:
    """A gloo peer address names a node; on a node of several ranks it cannot name one rank."""
    same_node = [
        outcome(0, "consequence", at=1.0, host="10.0.0.1"),
        outcome(1, "consequence", at=1.0, host="10.0.0.1"),
        outcome(2, "consequence", at=2.0, host="10.0.0.2", blames=("[10.0.0.1]:5000",)),
    ]
    cause = decide_root_cause(same_node).root_cause
    assert cause is not None
    assert not any("name" in step for step in cause.basis)
    one_rank_there = [
        same_node[0],
        same_node[2].model_copy(update={"host": "10.0.0.9", "rank": 1}),
    ]
    pick = decide_root_cause(one_rank_there, world_size=2).root_cause
    assert pick is not None
    assert pick.rank == 0
    assert pick.basis[-1] == "1 consequence errors name rank 0 (10.0.0.1)"


def test_a_rank_without_a_report_is_named() -> None:
    """Only consequences, and rank 2 of 3 wrote nothing: its node died, and it is the cause."""
    job = [outcome(0, "consequence", at=1.0), outcome(1, "consequence", at=1.1)]
    for order in every_order(job):
        verdict = decide_root_cause(order)
        assert verdict.missing_ranks == [2]
        assert verdict.root_cause is not None
        assert verdict.root_cause.missing
        assert (verdict.root_cause.rank, verdict.root_cause.category) == (2, "missing")
        assert verdict.root_index is None


def test_a_missing_rank_blamed_by_rank_is_preferred() -> None:
    """Of several missing ranks, the one the consequence errors name is the cause."""
    job = [outcome(0, "consequence", at=1.0, blames=("rank 3",), world_size=4)]
    cause = decide_root_cause(job).root_cause
    assert cause is not None
    assert cause.rank == 3
    assert cause.basis[-1] == "1 consequence errors name rank 3"


def test_missing_ranks_are_listed_but_lose_to_an_own_fault() -> None:
    """A root-cause failure beats a missing rank; the basis still says which ranks are missing."""
    job = [outcome(0, "root_cause", at=1.0, category="gpu", subcategory="oom")]
    verdict = decide_root_cause(job, world_size=3)
    assert verdict.missing_ranks == [1, 2]
    assert verdict.root_cause is not None
    assert verdict.root_cause.rank == 0
    assert verdict.root_cause.basis[1] == "2 rank(s) wrote no report: 1, 2"


def test_all_consequences_the_blamed_rank_is_the_cause() -> None:
    """When every failure is a consequence, the rank the others blame is the root cause."""
    job = [
        outcome(0, "consequence", at=1.0, blames=("rank 2",)),
        outcome(1, "consequence", at=1.0, blames=("rank 2",)),
        outcome(2, "consequence", at=2.0, blames=("rank 0",)),
    ]
    for order in every_order(job):
        cause = decide_root_cause(order).root_cause
        assert cause is not None
        assert cause.rank == 2
        assert cause.basis[-1] == "2 consequence errors name rank 2"


def test_a_hung_rank_is_named_with_a_timeout_verdict() -> None:
    """Peers time out in a collective; the rank without a comm error of its own hung."""
    job = [
        outcome(0, "consequence", at=5.0, subcategory="gloo_timeout", progress=0.2),
        outcome(1, "consequence", at=5.0, subcategory="gloo_timeout", progress=0.2),
        outcome(
            2,
            "collateral",
            at=6.0,
            category="crash",
            subcategory="terminated",
            progress=0.1,
            blocked_in="train.py:41 in step",
        ),
    ]
    for order in every_order(job):
        cause = decide_root_cause(order).root_cause
        assert cause is not None
        assert (cause.rank, cause.category, cause.subcategory) == (2, "timeout", "hang")
        assert cause.blocked_in == "train.py:41 in step"
        assert "blocked in train.py:41 in step" in cause.summary
        assert "never reached it" in cause.basis[-1]
        verdict = decide_root_cause(order)
        assert verdict.root_index is not None
        assert verdict.roles[verdict.root_index] == "root_cause", "the job's view of the rank"


def test_a_rank_killed_before_its_peers_failed_did_not_hang() -> None:
    """A SIGKILL from outside (no OOM evidence) before the peers' resets: it went first, and is
    named with its own verdict, not as a hang."""
    job = [
        outcome(0, "consequence", at=2.0),
        outcome(1, "collateral", at=1.0, category="crash", subcategory="killed"),
        outcome(2, "consequence", at=2.1),
    ]
    for order in every_order(job):
        cause = decide_root_cause(order).root_cause
        assert cause is not None
        assert (cause.rank, cause.category, cause.subcategory) == (1, "crash", "killed")
        assert cause.basis[-1].endswith("it went first, killed from outside")


def test_only_collateral_the_rank_that_stalled_first_is_named() -> None:
    """Every rank was signalled: the one that stopped making progress first is the suspect."""
    job = [
        outcome(r, "collateral", at=9.0, category="crash", subcategory="killed", progress=p)
        for r, p in ((0, 3.0), (1, 1.5), (2, 2.0))
    ]
    for order in every_order(job):
        cause = decide_root_cause(order).root_cause
        assert cause is not None
        assert cause.rank == 1
        assert cause.basis[-1].startswith("stopped making progress first: rank 1")


@pytest.mark.parametrize(
    ("status", "category", "expected"),
    [
        ("cancelled", None, "collateral"),
        ("failed", "comm", "consequence"),
        ("failed", "memory", "root_cause"),
        ("succeeded", None, None),
    ],
)
def test_reports_without_roles_are_read_by_status_and_category(
    status: str, category: str | None, expected: str | None
) -> None:
    """Reports of older crashsight versions have no role; it is read from what they do say."""
    old = outcome(0, None, at=1.0, category=category or "x", status=status, world_size=None)
    assert role_of(old) == expected


def test_nothing_failed_means_no_root_cause() -> None:
    """All ranks succeeded: no root cause, and no role."""
    job = [outcome(r, None, status="succeeded") for r in range(3)]
    verdict = decide_root_cause(job)
    assert verdict.root_cause is None
    assert verdict.roles == [None, None, None]


def test_the_decision_is_the_same_for_every_order_of_a_larger_job() -> None:
    """Shuffled inputs of a 6-rank job with mixed roles and times always give the same answer."""
    job = [
        outcome(0, "consequence", at=0.1, blames=("rank 4",), world_size=6),
        outcome(1, "collateral", at=0.2, category="crash", subcategory="terminated", world_size=6),
        outcome(2, "root_cause", at=0.9, category="disk", subcategory="enospc", world_size=6),
        outcome(3, "consequence", at=0.3, world_size=6),
        outcome(4, "root_cause", at=0.4, category="crash", subcategory="segfault", world_size=6),
        outcome(5, "root_cause", at=None, category="python", subcategory="X", world_size=6),
    ]
    answers = {
        (v.root_cause.rank if v.root_cause else None, tuple(v.root_cause.basis))
        if (v := decide_root_cause(order)).root_cause
        else None
        for order in itertools.islice(itertools.permutations(job), 0, None, 7)
    }
    assert len(answers) == 1
    rank, basis = answers.pop()  # type: ignore[misc]
    assert rank == 4
    assert basis[-1] == "confirmed: 1 consequence errors name rank 4"
