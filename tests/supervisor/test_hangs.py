"""Hangs explained: real deadlocks and waits, stopped by crashsight, say where they were stuck.

Every worker of ``tests/hang_workers.py`` really blocks (a lock it holds, an empty queue, a socket
with no sender, a tool that never exits, ...). The stopped runner's status must carry every
thread's stack, the process tree, and ``blocked_in`` naming the function that blocked, and its
summary must name it too. The no-progress cases run together under one supervisor (module
fixture), so the suite pays for one wait, not one per case.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio
import psutil
import pytest

from crashsight.diagnostics.blocked import odd_one_out
from crashsight.diagnostics.hangs import BlockedIn
from crashsight.protocol import Progress
from crashsight.supervisor.groupstop import stop_with_stacks
from crashsight.supervisor.pyspy import find_py_spy
from crashsight.supervisor.runner import Runner
from crashsight.supervisor.snapshot import StackOptions
from crashsight.supervisor.status import RunnerCancelled, RunnerFailed, RunnerStatus
from crashsight.supervisor.stop import StopPolicy
from crashsight.supervisor.supervisor import Supervisor

HANG = Path(__file__).resolve().parent.parent / "hang_workers.py"
PYTHON = sys.executable

#: Case name -> command. ``bootstrap`` runs through the runner bootstrap, ``sh`` through a shell
#: (the python child registers through the .pth hook, as every plain python here does).
COMMANDS: dict[str, list[str]] = {
    "lock": [PYTHON, str(HANG), "flush_shard"],
    "queue": [PYTHON, str(HANG), "wait_for_batch"],
    "socket": [PYTHON, str(HANG), "read_reply"],
    "sleep": [PYTHON, str(HANG), "nap"],
    "subprocess": [PYTHON, str(HANG), "run_tool"],
    "two-children": [PYTHON, str(HANG), "run_tools"],
    "thread-pool": [PYTHON, str(HANG), "thread_pool"],
    "process-pool": [PYTHON, str(HANG), "process_pool"],
    "asyncio": [PYTHON, str(HANG), "asyncio_service"],
    "trio": [PYTHON, str(HANG), "trio_service"],
    # The runner itself is asked over its lifeline; the same program as a shell's child is not.
    "own-handler-runner": [PYTHON, str(HANG), "nap_with_own_handler"],
    "own-handler": ["sh", "-c", f"'{PYTHON}' '{HANG}' nap_with_own_handler; echo unreachable"],
    "busy-thread": [PYTHON, str(HANG), "nap_beside_a_busy_thread"],
    "gil-held": [PYTHON, str(HANG), "hold_the_gil"],
    "c-ignores-sigterm": [PYTHON, str(HANG), "nap_ignoring_sigterm_in_c"],
    "blocked-signals": [PYTHON, str(HANG), "blocked_signals"],
    "sh": ["sh", "-c", f"'{PYTHON}' '{HANG}' flush_shard; echo unreachable"],
    "not-python": ["sh", "-c", 'echo "$CRASHSIGHT_STACKS_DIR" >&2; exec sleep 3600'],
    "secret": [PYTHON, str(HANG), "nap", "--api-key", "s3cr3t-value-1234"],
}
BOOTSTRAP = f"{HANG}:flush_shard"
#: The no-progress timeout: also the time a worker has from spawn to its first line. About
#: twenty interpreters start at once on a 2-core machine; all of them had printed theirs within
#: 0.9 s, also with two busy loops on both cores (measured), so this leaves a wide margin.
QUIET_S = 5.0
#: How long the stop waits for the dumps: a loaded machine can be slow to answer.
STACK_WAIT_S = 5.0
ANNOUNCE = {**os.environ, "HANG_ANNOUNCE": "1"}


async def _hang_all() -> dict[str, RunnerStatus]:
    """Three supervisors at once: the default stacks, native stacks (py-spy), and none."""
    statuses: dict[str, RunnerStatus] = {}

    def quiet(stacks: StackOptions | None, grace: float = 1.0) -> Supervisor:
        return Supervisor(
            output="discard",
            no_progress_timeout=QUIET_S,
            stacks=stacks,
            stop_policy=StopPolicy(grace=grace),
        )

    async def default() -> None:
        # The wait ends once the dumps hold still; only the silent cases pay all of it.
        async with quiet(StackOptions(wait=STACK_WAIT_S)) as supervisor:
            runners = {
                name: await supervisor.spawn_command(argv, name=name)
                for name, argv in COMMANDS.items()
            }
            runners["bootstrap"] = await supervisor.spawn(BOOTSTRAP)
            runners["deadline"] = await supervisor.spawn_command(
                [PYTHON, str(HANG), "nap"], deadline=QUIET_S, no_progress_timeout=None
            )
        statuses.update({name: await runner.wait() for name, runner in runners.items()})

    async def native() -> None:
        async with quiet(StackOptions(native=True), grace=0.5) as supervisor:
            runner = await supervisor.spawn_command([PYTHON, str(HANG), "blocked_signals"])
        statuses["native"] = await runner.wait()

    async def without() -> None:
        async with quiet(None) as supervisor:
            runner = await supervisor.spawn_command([PYTHON, str(HANG), "nap"])
        statuses["no-stacks"] = await runner.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(default)
        tg.start_soon(without)
        if find_py_spy() is not None:
            tg.start_soon(native)
    return statuses


@pytest.fixture(scope="module")
def hung() -> dict[str, RunnerStatus]:
    """Every hang case, each stopped by the no-progress watchdog after it blocked."""
    return anyio.run(_hang_all)


@pytest.mark.parametrize(
    ("case", "function", "waiting_on"),
    [
        pytest.param("lock", "flush_shard", None, id="threading-lock"),
        pytest.param("queue", "wait_for_batch", "queue", id="queue-get"),
        pytest.param("socket", "read_reply", None, id="socket-recv"),
        pytest.param("sleep", "nap", None, id="time-sleep"),
        pytest.param("subprocess", "run_tool", "child", id="subprocess-run"),
        pytest.param("thread-pool", "compress_chunk", None, id="thread-pool-worker"),
        pytest.param("asyncio", "handle_request", None, id="asyncio-blocked-loop"),
        pytest.param("trio", "trio_service", "event loop", id="trio-idle-loop"),
        pytest.param("sh", "flush_shard", None, id="sh-c-python"),
        pytest.param("bootstrap", "flush_shard", None, id="bootstrap-target"),
    ],
)
def test_blocked_in_names_the_stuck_function(
    hung: dict[str, RunnerStatus], case: str, function: str, waiting_on: str | None
) -> None:
    """The summary and ``blocked_in`` name the user's function the stuck thread is in."""
    status = hung[case]
    assert isinstance(status, RunnerFailed), status
    assert status.timeout == "no_progress"
    assert status.blocked_in is not None, status.notes
    assert status.blocked_in.function == function
    assert status.blocked_in.waiting_on == waiting_on
    assert Path(status.blocked_in.file).name == "hang_workers.py"
    assert f"; blocked in {function} (hang_workers.py:{status.blocked_in.line})" in status.summary
    assert status.summary.startswith(f"timeout/no_progress: no event or output for {QUIET_S:g} s; ")
    assert status.signals_sent[0] == "SIGTERM"


def test_a_deadline_stop_says_where_it_stopped(hung: dict[str, RunnerStatus]) -> None:
    """Past its deadline, a worker is stopped with its stacks too: "stopped in", not "blocked"."""
    status = hung["deadline"]
    assert isinstance(status, RunnerFailed)
    assert status.timeout == "deadline"
    assert status.blocked_in is not None
    assert status.blocked_in.function == "nap"
    assert status.summary == (
        f"timeout/deadline: still running after the {QUIET_S:g} s deadline; "
        f"stopped in nap (hang_workers.py:{status.blocked_in.line})"
    )


def test_a_worker_that_is_not_python_gets_its_tree_and_a_note(
    hung: dict[str, RunnerStatus],
) -> None:
    """No Python process, no stacks: the tree and a note; the dump folder is gone afterwards."""
    status = hung["not-python"]
    assert isinstance(status, RunnerFailed)
    assert status.stacks == []
    assert status.blocked_in is None
    assert [(p.pid, p.name, p.cmdline) for p in status.process_tree] == [
        (status.pid, "sleep", ["sleep", "3600"])
    ]
    assert any("no Python process in the tree" in note for note in status.notes), status.notes
    folder = Path(status.stderr_tail[0])
    assert folder.name.startswith("crashsight-stacks-")
    assert not folder.exists()


def test_the_tree_is_redacted(hung: dict[str, RunnerStatus]) -> None:
    """A credential on a command line of the tree never reaches the status."""
    status = hung["secret"]
    assert status.process_tree[0].cmdline[-2:] == ["--api-key", "***"]
    assert "s3cr3t-value-1234" not in status.model_dump_json()


def test_stacks_hold_every_thread_with_source_lines(hung: dict[str, RunnerStatus]) -> None:
    """Each thread of the dumped process is there, innermost frame last, with its source line."""
    status = hung["thread-pool"]
    assert status.blocked_in is not None
    threads = [stack for stack in status.stacks if stack.pid == status.pid]
    main = next(stack for stack in threads if stack.thread_name == "MainThread")
    waits = [(Path(frame.file).name, frame.function) for frame in main.frames]
    assert ("_base.py", "result") in waits, "the main thread waits in Future.result"
    assert [frame.function for frame in main.frames[:2]] == ["<module>", "thread_pool"]
    worker = next(stack for stack in threads if stack.thread_id == status.blocked_in.thread_id)
    assert worker is not main
    assert worker.frames[-1].function == "compress_chunk"
    assert worker.frames[-1].code == "lock.acquire()"
    assert sum(stack.current for stack in threads) == 1


def test_the_child_waited_on_is_named(hung: dict[str, RunnerStatus]) -> None:
    """A worker stuck in subprocess.run names the child it waits for, in the summary too."""
    status = hung["subprocess"]
    assert isinstance(status, RunnerFailed)
    assert status.blocked_in is not None
    assert status.blocked_in.child is not None
    child = status.blocked_in.child
    assert child.name == "sleep"
    assert f"waiting on child sleep (pid {child.pid})" in status.summary
    tree = {info.pid: info for info in status.process_tree}
    assert tree[child.pid].ppid == status.pid
    assert tree[child.pid].cmdline == ["sleep", "3600"]
    assert tree[status.pid].stacks
    assert not tree[child.pid].stacks


def test_among_children_the_one_waited_for_is_named(hung: dict[str, RunnerStatus]) -> None:
    """Two children: the kernel's wait4 says which one the stuck thread waits for."""
    status = hung["two-children"]
    assert status.blocked_in is not None
    assert status.blocked_in.function == "run_tools"
    waited = next(p for p in status.process_tree if p.cmdline == ["sleep", "3602"])
    assert status.blocked_in.child is not None
    assert status.blocked_in.child.pid == waited.pid
    assert waited.pid in status.process_tree[0].waiting_for


def test_a_process_pool_names_its_worker_which_dumps_its_own_stacks(
    hung: dict[str, RunnerStatus],
) -> None:
    """Waiting on a forked pool worker: the worker is named, and its own stacks are there too."""
    status = hung["process-pool"]
    assert isinstance(status, RunnerFailed)
    assert status.blocked_in is not None
    assert status.blocked_in.function == "process_pool"
    child = status.blocked_in.child
    assert child is not None
    assert f"waiting on child {child.name} (pid {child.pid})" in status.summary
    worker = [stack for stack in status.stacks if stack.pid == child.pid]
    assert any(stack.frames[-1].function == "encode_shard" for stack in worker)


def test_process_tree_at_the_stop(hung: dict[str, RunnerStatus]) -> None:
    """The tree lists the shell and its python child, parents first, with state, CPU and age."""
    status = hung["sh"]
    root, child = status.process_tree[0], status.process_tree[1]
    assert (root.pid, root.name) == (status.pid, "sh")
    assert child.ppid == root.pid
    assert child.cmdline[-1] == "flush_shard"
    assert status.blocked_in is not None
    assert status.blocked_in.pid == child.pid
    assert child.state in {"sleeping", "disk-sleep"}
    assert child.cpu_time_s > 0
    assert child.age_s > 0


def test_a_handler_of_the_program_is_left_alone(hung: dict[str, RunnerStatus]) -> None:
    """A worker that handles the dump signal itself is not sent it; SIGTERM's dump still comes."""
    status = hung["own-handler"]
    assert isinstance(status, RunnerFailed)
    assert not any("own handler ran" in line for line in status.stderr_tail)
    assert any(
        "handles SIGUSR2 itself, so crashsight left it alone" in note and "on_signal" in note
        for note in status.notes
    ), status.notes
    assert any("wrote its stacks on SIGTERM instead" in note for note in status.notes)
    assert status.blocked_in is not None
    assert status.blocked_in.function == "nap_with_own_handler"
    assert "blocked in nap_with_own_handler" in status.summary


def test_the_runner_is_asked_over_its_channel_not_by_the_signal(
    hung: dict[str, RunnerStatus],
) -> None:
    """A runner that handles the dump signal itself still gives its stacks before the stop.

    It is asked on its lifeline and crashsight's own thread writes the dump, so the program's
    handler never runs and no "left alone" note is needed.
    """
    status = hung["own-handler-runner"]
    assert isinstance(status, RunnerFailed)
    assert not any("own handler ran" in line for line in status.stderr_tail)
    assert not any("left it alone" in note for note in status.notes), status.notes
    [current] = [stack for stack in status.stacks if stack.current]
    assert current.thread_name == "crashsight-supervisor-watch"
    assert status.blocked_in is not None
    assert status.blocked_in.function == "nap_with_own_handler"


def test_a_thread_running_python_is_dumped_safely(hung: dict[str, RunnerStatus]) -> None:
    """The dump holds the GIL: the busy thread's deep stack is read whole, and the stop ends
    the worker by SIGTERM, never by a SIGSEGV in the dump."""
    status = hung["busy-thread"]
    assert isinstance(status, RunnerFailed)
    assert status.exit.signal == "SIGTERM", status.stderr_tail
    # faulthandler names no thread but the main one. The busy one is in churn itself between two
    # calls, or in deep() (over 100 frames deep, faulthandler keeps the innermost 100: churn's
    # own frame is then cut).
    busy = {"_bootstrap", "_bootstrap_inner", "run", "churn", "deep"}
    assert any(
        {"churn", "deep"} & names and names <= busy
        for names in ({frame.function for frame in stack.frames} for stack in status.stacks)
    ), [[frame.function for frame in stack.frames][-3:] for stack in status.stacks]
    [current] = [stack for stack in status.stacks if stack.current]
    assert current.thread_name == "crashsight-supervisor-watch"
    assert status.blocked_in is not None
    assert status.blocked_in.function == "nap_beside_a_busy_thread"


def test_a_runner_holding_the_gil_dumps_on_sigterm(hung: dict[str, RunnerStatus]) -> None:
    """Stuck in C with the GIL, a runner cannot answer on its lifeline; the stop's SIGTERM dump
    (safe then: no thread runs Python) still says where it was."""
    status = hung["gil-held"]
    assert isinstance(status, RunnerFailed)
    assert any(
        f"within {STACK_WAIT_S:g} s of the request on its lifeline" in note for note in status.notes
    )
    assert any("wrote its stacks late (on SIGTERM" in note for note in status.notes)
    assert status.blocked_in is not None
    assert status.blocked_in.function == "hold_the_gil"
    assert status.exit.signal == "SIGTERM"


def test_a_sigterm_disposition_set_in_c_stays_the_programs(hung: dict[str, RunnerStatus]) -> None:
    """Answering on its lifeline changes no signal disposition: SIGTERM stays ignored, as the
    program's C code set it, and the stop needs its SIGKILL (the stacks came first)."""
    status = hung["c-ignores-sigterm"]
    assert isinstance(status, RunnerFailed)
    assert status.signals_sent == ["SIGTERM", "SIGKILL"]
    assert status.exit.signal == "SIGKILL"
    assert status.blocked_in is not None
    assert status.blocked_in.function == "nap_ignoring_sigterm_in_c"


def test_a_worker_blocking_every_signal_is_stopped_anyway(hung: dict[str, RunnerStatus]) -> None:
    """No dump can come from a process that blocks every signal: noted, then SIGKILLed."""
    status = hung["blocked-signals"]
    assert isinstance(status, RunnerFailed)
    assert status.signals_sent == ["SIGTERM", "SIGKILL"]
    assert status.exit.signal == "SIGKILL"
    assert any("every thread blocks SIGUSR2; stopped anyway" in note for note in status.notes)
    assert status.blocked_in is None
    assert status.stacks == []
    assert status.summary == f"timeout/no_progress: no event or output for {QUIET_S:g} s; stopped"


async def _blocked(supervisor: Supervisor, case: str) -> Runner:
    """A runner of ``case`` that announced itself and whose main thread sleeps in its block."""
    runner = await supervisor.spawn_command([PYTHON, str(HANG), case], env=ANNOUNCE)
    with anyio.fail_after(30):
        await _wait_until_blocked(runner)
    return runner


async def _wait_until_blocked(runner: Runner) -> None:
    async for event in runner.events():
        if isinstance(event, Progress):
            break
    assert runner.pid is not None
    while psutil.Process(runner.pid).status() != psutil.STATUS_SLEEPING:  # noqa: ASYNC110 - no event for a process state
        await anyio.sleep(0.01)


@pytest.mark.asyncio
async def test_a_sigterm_from_outside_leaves_the_stacks() -> None:
    """Stopped by someone else's SIGTERM (a launcher, Kubernetes), a worker still says where it was."""
    async with Supervisor(output="discard") as supervisor:
        runner = await _blocked(supervisor, "nap")
        assert runner.pid is not None
        os.kill(runner.pid, signal.SIGTERM)
        status = await runner.wait()
    assert isinstance(status, RunnerFailed)
    assert status.exit.signal == "SIGTERM"
    assert status.signals_sent == []
    assert status.blocked_in is not None
    assert status.blocked_in.function == "nap"
    assert f"; stopped in nap (hang_workers.py:{status.blocked_in.line})" in status.summary


@pytest.mark.asyncio
async def test_a_launcher_stopping_its_rank_leaves_the_ranks_stacks() -> None:
    """crashsight wraps a launcher that SIGTERMs its surviving rank: the rank's stacks are kept."""
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn_command([PYTHON, str(HANG), "launcher"])
        status = await runner.wait()
    assert isinstance(status, RunnerFailed)
    assert status.exit.code == 1
    assert status.blocked_in is not None
    assert status.blocked_in.function == "nap"
    assert status.blocked_in.pid != status.pid
    assert {stack.pid for stack in status.stacks} == {status.blocked_in.pid}


@pytest.mark.asyncio
async def test_a_cancelled_runner_carries_its_stacks() -> None:
    """Runner.stop takes the stacks first too: the cancelled status says where it was."""
    async with Supervisor(output="discard") as supervisor:
        runner = await _blocked(supervisor, "wait_for_batch")
        status = await runner.stop("shard reassigned")
    assert isinstance(status, RunnerCancelled)
    assert status.blocked_in is not None
    assert status.blocked_in.function == "wait_for_batch"
    assert status.blocked_in.waiting_on == "queue"


def test_stacks_can_be_turned_off(hung: dict[str, RunnerStatus]) -> None:
    """``stacks=None``: no dump signal, no folder in the environment, the summary as before."""
    status = hung["no-stacks"]
    assert isinstance(status, RunnerFailed)
    assert status.stacks == []
    assert status.blocked_in is None
    assert status.process_tree == []
    assert status.summary == f"timeout/no_progress: no event or output for {QUIET_S:g} s; stopped"


@pytest.mark.skipif(find_py_spy() is None, reason="py-spy is not installed (crashsight[stacks])")
def test_native_stacks_reach_a_worker_that_blocks_signals(hung: dict[str, RunnerStatus]) -> None:
    """With py-spy, native frames are added, and even a worker blocking every signal is read."""
    status = hung["native"]
    assert status.blocked_in is not None, status.notes
    assert status.blocked_in.function == "nap_unanswered"
    assert status.blocked_in.thread_name == "MainThread"
    main = next(stack for stack in status.stacks if stack.thread_name == "MainThread")
    native = [frame for frame in main.native_frames if not frame.file.endswith(".py")]
    assert native, "py-spy found no native frame under time.sleep"


RANKS = {"rank-0": "wait_for_batch", "rank-1": "wait_for_batch", "rank-2": "flush_shard"}


@pytest.mark.asyncio
async def test_group_stop_names_the_rank_stuck_elsewhere() -> None:
    """Two ranks wait in one place, one is stuck elsewhere (the rank that never arrived).

    Every rank's status carries its stacks; the odd one is the rank not waiting with the rest."""
    async with Supervisor(output="discard") as supervisor:
        runners = {
            name: await supervisor.spawn_command([PYTHON, str(HANG), case], env=ANNOUNCE)
            for name, case in RANKS.items()
        }
        with anyio.fail_after(60):
            for runner in runners.values():
                await _wait_until_blocked(runner)
        await stop_with_stacks(list(runners.values()), "job hang")
    statuses = {name: await runner.wait() for name, runner in runners.items()}
    blocked: dict[str, BlockedIn | None] = {}
    for name, status in statuses.items():
        assert isinstance(status, RunnerCancelled)
        assert status.reason == "job hang"
        assert status.blocked_in is not None
        assert status.blocked_in.function == RANKS[name]
        blocked[name] = status.blocked_in
    assert odd_one_out(blocked) == "rank-2"
