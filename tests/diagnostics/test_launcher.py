"""Splitting torchrun's stderr by rank, and the job verdict from it.

The texts are torchrun's own, captured from torch 2.13 on CPU (gloo) running
``tests/torch/dist_worker.py``; the suite under ``tests/torch`` produces them live.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crashsight.diagnostics.catalogue import CATALOGUE
from crashsight.diagnostics.classify import Classifier
from crashsight.diagnostics.collector import StderrCollector
from crashsight.diagnostics.launcher import LauncherJob, LauncherSplitter, is_torch_launcher

#: rank 1 runs out of memory in the allocator; ranks 0 and 2 lose their gloo peer and are then
#: stopped by torchrun. Abridged: the rank tracebacks' middle frames are left out.
OOM_RUN = """\
W1129 20:38:48.364000 15886 torch/distributed/run.py:874] *****************************************
[rank1]: Traceback (most recent call last):
[rank1]:   File "/w/tests/torch/dist_worker.py", line 54, in main
[rank1]:     fail(args.scenario, torch)
[rank1]: RuntimeError: [enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate 4503599627370496 bytes. Error code 12 (Cannot allocate memory)
terminate called without an active exception
[rank0]: Traceback (most recent call last):
[rank0]:   File "/w/tests/torch/dist_worker.py", line 55, in main
[rank0]:     dist.all_reduce(tensor)
[rank0]: RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:9110. This is typically caused by a remote worker crashing. Check the logs of the remote worker before reporting an error. GLHF! \U0001f3d6\ufe0f
W1129 20:38:52.791000 15886 torch/distributed/elastic/multiprocessing/api.py:1028] Sending process 15922 closing signal SIGTERM
W1129 20:38:52.791000 15886 torch/distributed/elastic/multiprocessing/api.py:1028] Sending process 15924 closing signal SIGTERM
E1129 20:38:52.857000 15886 torch/distributed/elastic/multiprocessing/api.py:1002] failed (exitcode: -6) local_rank: 1 (pid: 15923) of binary: /w/.venv/bin/python
Traceback (most recent call last):
  File "/w/.venv/bin/torchrun", line 6, in <module>
    sys.exit(main())
  File "/w/.venv/lib/python3.11/site-packages/torch/distributed/launcher/api.py", line 383, in launch_agent
    raise ChildFailedError(
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
=======================================================
/w/tests/torch/dist_worker.py FAILED
-------------------------------------------------------
Failures:
[1]:
  time      : 2026-11-29_20:38:52
  host      : localhost
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 15922)  (SIGTERM)
  error_file: <N/A>
  traceback : Signal 15 (SIGTERM) received by PID 15922
[2]:
  time      : 2026-11-29_20:38:52
  host      : localhost
  rank      : 2 (local_rank: 2)
  exitcode  : -15 (pid: 15924)  (SIGTERM)
  error_file: <N/A>
  traceback : Signal 15 (SIGTERM) received by PID 15924
-------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-11-29_20:38:52
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -6 (pid: 15923)  (SIGABRT)
  error_file: <N/A>
  traceback : Signal 6 (SIGABRT) received by PID 15923
=======================================================
"""


def _job(text: str) -> tuple[LauncherSplitter, LauncherJob | None]:
    """Feed ``text`` through a collector as the supervisor does, with a clock that ticks."""
    ticks = iter(
        datetime(2026, 11, 29, tzinfo=UTC) + timedelta(milliseconds=i) for i in range(10**6)
    )
    splitter = LauncherSplitter(clock=lambda: next(ticks))
    collector = StderrCollector(CATALOGUE, line_sinks=[splitter])
    # Chunks cut mid-line, as a pipe delivers them.
    data = text.encode()
    for start in range(0, len(data), 333):
        collector.feed(data[start : start + 333])
    collector.close()
    return splitter, splitter.job(Classifier())


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["torchrun", "--nproc-per-node", "2", "train.py"], True, id="torchrun"),
        pytest.param(["/venv/bin/torchrun", "train.py"], True, id="torchrun-path"),
        pytest.param(["python3", "-m", "torch.distributed.run", "t.py"], True, id="python-m"),
        pytest.param(["python", "-u", "-m", "torch.distributed.launch", "t.py"], True, id="launch"),
        pytest.param(["python", "train.py", "-m", "torch.distributed.run"], False, id="an-arg"),
        pytest.param(["python", "-m", "pytest"], False, id="other-module"),
        pytest.param(["bash", "-c", "torchrun x"], False, id="shell"),
        pytest.param([], False, id="empty"),
    ],
)
def test_torch_launchers_are_recognised(argv: list[str], expected: bool) -> None:
    """Only torchrun itself, or Python running its module, gets its output split by rank."""
    assert is_torch_launcher(argv) is expected


def test_the_summary_block_is_read_rank_by_rank() -> None:
    """Every block of torchrun's failure summary is parsed, the first observed one marked."""
    splitter, _ = _job(OOM_RUN)
    summary = {f.rank: f for f in splitter.summary}
    assert sorted(summary) == [0, 1, 2]
    assert (summary[1].exitcode, summary[1].pid, summary[1].first_observed) == (-6, 15923, True)
    assert summary[0].exitcode == -15
    assert not summary[0].first_observed
    assert summary[2].host == "localhost"
    assert summary[2].error_file is None
    assert summary[2].traceback == ["Signal 15 (SIGTERM) received by PID 15924"]


def test_each_rank_is_classified_from_its_own_lines() -> None:
    """The allocator's error belongs to rank 1, the gloo error to rank 0; rank 2 said nothing.

    Rank 2 was stopped by torchrun's SIGTERM with no error of its own: collateral, not a crash.
    """
    _, job = _job(OOM_RUN)
    assert job is not None
    ranks = {r.rank: r for r in job.ranks}
    assert (ranks[1].category, ranks[1].role) == ("memory", "root_cause")
    assert "DefaultCPUAllocator" in ranks[1].summary
    assert (ranks[0].category, ranks[0].subcategory, ranks[0].role) == (
        "comm",
        "gloo",
        "consequence",
    )
    assert ranks[2].role == "collateral"
    assert "stopped by the launcher (SIGTERM)" in ranks[2].summary
    assert job.root_cause_rank == 1
    assert job.launcher_root_cause_rank == 1
    assert job.root_cause is not None
    assert job.root_cause.category == "memory"


def test_a_silent_death_is_read_from_the_summary_and_beats_the_victims() -> None:
    """A rank that segfaults prints nothing; its exit in the summary is its verdict.

    torchrun names the victim it noticed first (rank 0): crashsight names rank 1 and says why.
    """
    text = (
        "[rank0]: Traceback (most recent call last):\n"
        "[rank0]: RuntimeError: [../third_party/gloo/gloo/transport/tcp/pair.cc:553] "
        "Connection closed by peer [127.0.0.1]:9110.\n"
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
        "=====\nx FAILED\n-----\nFailures:\n"
        "[1]:\n  time      : 2026-11-29_20:38:52\n  host      : node-a\n"
        "  rank      : 1 (local_rank: 1)\n  exitcode  : -11 (pid: 77)  (SIGSEGV)\n"
        "  error_file: <N/A>\n  traceback : Signal 11 (SIGSEGV) received by PID 77\n"
        "-----\nRoot Cause (first observed failure):\n"
        "[0]:\n  time      : 2026-11-29_20:38:52\n  host      : node-a\n"
        "  rank      : 0 (local_rank: 0)\n  exitcode  : 1 (pid: 76) \n"
        "  error_file: <N/A>\n"
        "  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html\n"
        "=====\n"
    )
    _, job = _job(text)
    assert job is not None
    assert job.launcher_root_cause_rank == 0
    assert job.root_cause_rank == 1
    ranks = {r.rank: r for r in job.ranks}
    assert (ranks[1].category, ranks[1].subcategory) == ("crash", "segfault")
    assert any("torchrun named rank 0" in note for note in job.notes)


def test_tee_prefixes_and_error_files_are_attributed() -> None:
    """``--tee`` lines (``[default3]:``) belong to their rank; an error file's traceback too.

    The local rank maps to the global rank through a line that carries both prefixes, so a
    second node's ``[default0]`` is rank 4, not rank 0.
    """
    text = (
        "[default0]:step 1 loss 2.5\n"
        "[default1]:[rank5]: Traceback (most recent call last):\n"
        "[default1]:[rank5]: OSError: [Errno 28] No space left on device\n"
        "[default0]:[rank4]: RuntimeError: Connection closed by peer [10.0.0.2]:29500\n"
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
        "=====\nRoot Cause (first observed failure):\n"
        "[0]:\n  time      : 2026-11-29_20:38:52\n  host      : node-b\n"
        "  rank      : 6 (local_rank: 2)\n  exitcode  : 1 (pid: 90) \n"
        "  error_file: /tmp/torchelastic_x/attempt_0/2/error.json\n"
        "  traceback : Traceback (most recent call last):\n"
        '    File "train.py", line 3, in <module>\n'
        "      save()\n"
        "  OSError: [Errno 28] No space left on device\n"
        "=====\n"
    )
    _, job = _job(text)
    assert job is not None
    ranks = {r.rank: r for r in job.ranks}
    assert sorted(ranks) == [4, 5, 6]
    assert (ranks[5].category, ranks[5].subcategory) == ("disk", "enospc")
    assert (ranks[6].category, ranks[6].subcategory) == ("disk", "enospc")
    assert ranks[4].category == "comm"


def test_output_without_ranks_gives_no_job() -> None:
    """A launcher that failed before any rank ran (bad arguments) keeps its own verdict."""
    _, job = _job("usage: torchrun [-h] ...\ntorchrun: error: unrecognized arguments: --bogus\n")
    assert job is None


def test_a_wrapper_reporting_a_signal_as_128_plus_n_is_read_as_that_signal() -> None:
    """A rank run through a wrapper (``--no-python bash -c``, ``crashsight run``) exits 139.

    That is how a wrapper says its command died of SIGSEGV, so the rank's verdict is a crash.
    """
    text = (
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
        "=====\nRoot Cause (first observed failure):\n"
        "[0]:\n  time      : 2026-11-29_20:38:52\n  host      : node-a\n"
        "  rank      : 2 (local_rank: 2)\n  exitcode  : 139 (pid: 80) \n"
        "  error_file: <N/A>\n"
        "  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html\n"
        "=====\n"
    )
    _, job = _job(text)
    assert job is not None
    assert (job.root_cause_rank, job.ranks[0].category, job.ranks[0].subcategory) == (
        2,
        "crash",
        "segfault",
    )


def test_a_rank_line_naming_child_failed_error_does_not_start_the_summary() -> None:
    """Only torchrun's own, unprefixed ``ChildFailedError:`` line opens its failure summary."""
    text = (
        "[rank0]: torch.distributed.elastic.multiprocessing.errors.ChildFailedError: nested\n"
        "[rank0]: OSError: [Errno 28] No space left on device\n"
    )
    splitter, job = _job(text)
    assert splitter.summary == []
    assert job is not None
    assert (job.ranks[0].category, job.ranks[0].subcategory) == ("disk", "enospc")


def test_ranks_all_stopped_from_outside_blame_no_rank() -> None:
    """When torchrun stops every rank (it was itself told to stop), no rank is the root cause."""
    blocks = "".join(
        f"[{i}]:\n  time      : 2026-11-29_20:38:52\n  host      : node-a\n"
        f"  rank      : {i} (local_rank: {i})\n  exitcode  : -15 (pid: {70 + i})  (SIGTERM)\n"
        f"  error_file: <N/A>\n  traceback : Signal 15 (SIGTERM) received by PID {70 + i}\n"
        for i in range(2)
    )
    text = (
        "W1129 20:38:52.791000 15886 torch/distributed/elastic/multiprocessing/api.py:1028] "
        "Sending process 70 closing signal SIGTERM\n"
        "W1129 20:38:52.791000 15886 torch/distributed/elastic/multiprocessing/api.py:1028] "
        "Sending process 71 closing signal SIGTERM\n"
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
        f"=====\nx FAILED\n-----\nFailures:\n{blocks}-----\n=====\n"
    )
    _, job = _job(text)
    assert job is not None
    assert job.root_cause_rank is None
    assert [r.role for r in job.ranks] == ["collateral", "collateral"]
