"""`crashsight aggregate` over the ranks of one job: the root cause first, a role for each rank."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from crashsight.report.aggregate import aggregate, load_shard

T0 = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def rank_report(
    folder: Path,
    rank: int,
    verdict: str,
    summary: str,
    *,
    role: str | None,
    at: float,
    host: str = "node-a",
    world_size: int = 4,
    status: str = "failed",
    **extra: object,
) -> Path:
    category, _, subcategory = verdict.partition("/")
    path = folder / f"rank{rank}.json"
    report = {
        "schema_version": 1,
        "name": "python train.py",
        "status": status,
        "category": category,
        "subcategory": subcategory or None,
        "summary": f"{verdict}: {summary}",
        "rank": rank,
        "local_rank": rank % 8,
        "world_size": world_size,
        "host": host,
        "role": role,
        "first_error_at": (T0 + timedelta(seconds=at)).isoformat(),
        "ended_at": (T0 + timedelta(seconds=at + 1)).isoformat(),
        "stderr_tail": ["x" * 200] * 5,
        **extra,
    }
    path.write_text(json.dumps(report))
    return path


def oom_job(folder: Path) -> list[Path]:
    """Rank 2 runs out of memory; ranks 0 and 1 see gloo resets first; rank 3 wrote nothing."""
    gloo = "RuntimeError: [pair.cc:537] Read error [10.0.0.2]:4100: Connection reset by peer"
    return [
        rank_report(folder, 0, "comm/gloo", gloo, role="consequence", at=0.4,
                    blamed_peers=["[10.0.0.2]:4100"]),
        rank_report(folder, 1, "comm/gloo", gloo, role="consequence", at=0.3,
                    blamed_peers=["[10.0.0.2]:4100"]),
        rank_report(folder, 2, "memory/memory_error", "MemoryError", role="root_cause", at=0.5,
                    host="10.0.0.2"),
    ]  # fmt: skip


def run_aggregate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crashsight", "aggregate", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_text_and_markdown_start_with_the_root_cause(tmp_path: Path) -> None:
    """The own-fault rank is named first, even though its peers' errors came earlier."""
    paths = [str(p) for p in oom_job(tmp_path)]
    text = run_aggregate("--format", "text", *paths)
    assert text.returncode == 1
    first, *rest = text.stdout.splitlines()
    assert first == (
        "root cause: rank 2 (10.0.0.2) memory/memory_error: MemoryError; 2 ranks failed as a "
        "consequence (comm/gloo); 1 rank wrote no report"
    )
    assert (
        "  basis: rank 2 (10.0.0.2) is the only failure of its own fault: memory/memory_error "
        "(beats 2 consequence)"
    ) in rest
    assert "  basis: confirmed: 2 consequence errors name rank 2 (10.0.0.2)" in rest
    assert "3 of 3 ranks failed. No report from rank(s) 3." in rest
    assert rest[-3].startswith("  rank 2 (10.0.0.2)  [root cause]  memory/memory_error")
    markdown = run_aggregate("--title-prefix", "[train]", *paths)
    title, blank, body_first, *_ = markdown.stdout.splitlines()
    assert blank == ""
    assert title == "[train] (memory/memory_error on rank 2, 3 ranks failed)"
    assert body_first == first
    assert (
        "| rank 2 (10.0.0.2) | root cause | memory/memory_error | memory/memory_error: MemoryError |"
        in markdown.stdout
    )


def test_json_has_the_root_cause_object_and_a_role_per_report(tmp_path: Path) -> None:
    """Machines get root_cause {path, name, rank, host, category, subcategory, summary, basis}."""
    paths = [str(p) for p in oom_job(tmp_path)]
    result = run_aggregate("--format", "json", "--html", str(tmp_path / "job.html"), *paths)
    data = json.loads(result.stdout)
    cause = data["root_cause"]
    assert cause["path"] == paths[2]
    assert (cause["rank"], cause["host"], cause["category"], cause["subcategory"]) == (
        2, "10.0.0.2", "memory", "memory_error",
    )  # fmt: skip
    assert cause["summary"] == "memory/memory_error: MemoryError"
    assert len(cause["basis"]) >= 2
    assert data["missing_ranks"] == [3]
    assert [s["role"] for s in data["shards"]] == ["consequence", "consequence", "root_cause"]
    page = (tmp_path / "job.html").read_text()
    assert "root cause: rank 2 (10.0.0.2) memory/memory_error" in page


def test_roles_of_old_reports_are_decided_from_what_they_say(tmp_path: Path) -> None:
    """Reports without roles (older crashsight), or with one this version does not know, still
    get one: comm is a consequence."""
    paths = [
        rank_report(
            tmp_path, 0, "comm/nccl_timeout", "Watchdog", role="victim?", at=1, world_size=2
        ),
        rank_report(tmp_path, 1, "crash/segfault", "SIGSEGV", role=None, at=2, world_size=2),
    ]
    result = aggregate([load_shard(p) for p in paths], "job")
    assert result.root_cause is not None
    assert result.root_cause.rank == 1
    assert [s.role for s in result.shards] == ["consequence", "root_cause"]


def test_a_hung_rank_with_its_blocked_frame_is_the_root_cause(tmp_path: Path) -> None:
    """Peers time out in gloo; the rank the launcher stopped, with no comm error, hung."""
    timeout = "RuntimeError: Timed out waiting 3000ms for recv operation to complete"
    blocked = {"file": "/src/train.py", "line": 41, "function": "load_batch", "pid": 1,
               "thread_id": 2}  # fmt: skip
    paths = [
        rank_report(tmp_path, 0, "comm/gloo_timeout", timeout, role="consequence", at=3, world_size=3),
        rank_report(tmp_path, 1, "comm/gloo_timeout", timeout, role="consequence", at=3, world_size=3),
        rank_report(tmp_path, 2, "crash/terminated", "killed by signal SIGTERM", role=None, at=4,
                    world_size=3, status="cancelled", blocked_in=blocked),
    ]  # fmt: skip
    result = aggregate([load_shard(p) for p in paths], "job")
    assert result.root_cause is not None
    assert (result.root_cause.rank, result.root_cause.category) == (2, "timeout")
    assert result.root_cause.blocked_in == "load_batch (train.py:41)"
    assert "blocked in load_batch (train.py:41)" in result.body.splitlines()[0]
    entry = result.shards[2]
    assert (entry.role, entry.category, entry.subcategory) == ("root_cause", "timeout", "hang")


def test_4096_ranks_give_a_bounded_body_and_the_right_rank(tmp_path: Path) -> None:
    """512 nodes x 8 ranks: one segfault among 4095 consequences; the body stays issue-sized."""
    paths = []
    for rank in range(4096):
        node = f"node-{rank // 8}"
        if rank == 1234:
            paths.append(
                rank_report(
                    tmp_path,
                    rank,
                    "crash/segfault",
                    "SIGSEGV",
                    role="root_cause",
                    at=5.0,
                    host=node,
                    world_size=4096,
                )
            )
        else:
            paths.append(rank_report(tmp_path, rank, "comm/nccl_timeout", "Watchdog " * 50,
                                     role="consequence", at=rank / 1000, host=node,
                                     world_size=4096))  # fmt: skip
    result = aggregate([load_shard(p) for p in paths], "job")
    assert result.root_cause is not None
    assert result.root_cause.rank == 1234
    assert len(result.body) < 20_000
    assert "… 4046 more ranks | comm/nccl_timeout x4046 | |" in result.body
    assert result.body.splitlines()[0].endswith(
        "4095 ranks failed as a consequence (comm/nccl_timeout)"
    )
