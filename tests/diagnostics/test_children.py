"""A worker's own child dies: the child's cause is the verdict, the wrapper only the messenger.

Real pools, commands, a torch DataLoader and ``torch.multiprocessing.spawn`` whose children really
fail (``tests/child_workers.py``), each through the real supervisor; then the pieces on their own:
who died (`find_child`), the child's traceback inside a wrapper's message, and summaries that read
well whatever the exception looks like.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from crashsight.diagnostics.analysis import analyze_file
from crashsight.diagnostics.catalogue import diagnose_line, signature_by_id
from crashsight.diagnostics.children import child_exceptions, find_child, signal_name_of
from crashsight.diagnostics.classify import Classifier, Facts
from crashsight.diagnostics.models import Diagnostic, MessageAt
from crashsight.diagnostics.summary import message_line, summary_line
from crashsight.protocol import ExceptionInfo
from crashsight.runner.describe import describe_exception
from crashsight.supervisor.cgroup import CgroupHost
from crashsight.supervisor.status import RunnerFailed
from crashsight.supervisor.stop import StopPolicy
from crashsight.supervisor.supervisor import SpawnOptions, Supervisor

WORKERS = Path(__file__).resolve().parent.parent / "child_workers.py"
_HAS_TORCH = importlib.util.find_spec("torch") is not None
_HAS_LOKY = importlib.util.find_spec("loky") is not None
#: torch rows: marked, skipped without torch, and given time to import torch twice (worker and
#: child) on a loaded machine.
TORCH = [
    pytest.mark.torch,
    pytest.mark.skipif(
        not _HAS_TORCH, reason="torch is not installed (.venv/bin/pip install torch==2.13.0)"
    ),
    pytest.mark.timeout(240),
]


@dataclass(frozen=True)
class ChildCase:
    """A worker whose child fails for real, and what the supervisor must conclude.

    Attributes:
        verdict: Expected ``category/subcategory``.
        worker: Function in ``child_workers.py`` and its arguments.
        child_signal: The signal ``in_child`` must name (None: no child death is known).
        child_name: The name ``in_child`` must carry, when the wrapper tells it.
        wrapper: The exception type that must stay in the termination error's chain.
        pid_known: Whether the wrapper tells the child's pid (in its text or attributes).
        options: Spawn options (the no-progress watchdog for a pool that hangs).
    """

    verdict: str
    worker: tuple[str, ...]
    child_signal: str | None = "SIGSEGV"
    child_name: str | None = None
    wrapper: str | None = None
    pid_known: bool = False
    options: SpawnOptions = field(default_factory=lambda: SpawnOptions())


# fmt: off
CASES = [
    pytest.param(
        ChildCase("crash/segfault", ("futures_pool", "segfault"), wrapper="BrokenProcessPool"),
        id="futures-pool-segfault",
    ),
    pytest.param(
        ChildCase("disk/enospc", ("futures_pool", "enospc"), child_signal=None, wrapper="OSError"),
        id="futures-pool-dev-full",
    ),
    pytest.param(
        ChildCase("memory/memory_error", ("futures_pool", "memory"), child_signal=None, wrapper="MemoryError"),
        id="futures-pool-rlimit-as",
    ),
    pytest.param(
        # A Pool never fails the task its dead worker held: the worker hangs until the watchdog,
        # which must wait out a start, a pool and its child on a loaded machine (0.1 s quiet).
        ChildCase("crash/segfault", ("mp_pool", "segfault"), options=SpawnOptions(no_progress_timeout=4.0)),
        id="multiprocessing-pool-segfault-then-hang",
    ),
    pytest.param(
        ChildCase("disk/enospc", ("mp_pool", "enospc"), child_signal=None, wrapper="OSError"),
        id="multiprocessing-pool-dev-full",
    ),
    pytest.param(
        ChildCase("disk/enospc", ("mp_process", "enospc"), child_signal=None, child_name="Process-1", wrapper="RuntimeError"),
        id="multiprocessing-process-dev-full",
    ),
    pytest.param(
        ChildCase("crash/segfault", ("python_child_segfault",), child_name="python", wrapper="CalledProcessError"),
        id="subprocess-python-child-faulthandler",
    ),
    pytest.param(
        # Without faulthandler in the child, CalledProcessError's own text names the signal.
        ChildCase(
            "crash/segfault",
            ("run_command", "env", "PYTHONFAULTHANDLER=", sys.executable, "-c", "import ctypes; ctypes.string_at(0)"),
            child_name="env", wrapper="CalledProcessError",
        ),
        id="subprocess-signal-from-wrapper",
    ),
    pytest.param(
        ChildCase("crash/segfault", ("dataloader_segfault",), child_name="DataLoader worker", wrapper="RuntimeError", pid_known=True),
        id="torch-dataloader-worker-segfault", marks=TORCH,
    ),
    pytest.param(
        ChildCase("crash/segfault", ("mp_spawn", "segfault"), child_name="process 0", wrapper="ProcessExitedException", pid_known=True),
        id="torch-mp-spawn-segfault", marks=TORCH,
    ),
    pytest.param(
        ChildCase("disk/enospc", ("mp_spawn", "enospc"), child_signal=None, child_name="Process 0", wrapper="ProcessRaisedException", pid_known=True),
        id="torch-mp-spawn-raises-enospc", marks=TORCH,
    ),
    pytest.param(
        ChildCase("crash/segfault", ("loky_segfault",), wrapper="TerminatedWorkerError"),
        id="loky-worker-segfault",
        marks=pytest.mark.skipif(not _HAS_LOKY, reason="loky is not installed (pip install loky)"),
    ),
]
# fmt: on


async def _run(
    worker: tuple[str, ...], options: SpawnOptions, cwd: Path, **supervision: Any
) -> RunnerFailed:
    async with Supervisor(
        output="discard", stop_policy=StopPolicy(grace=2.0), **supervision
    ) as supervisor:
        options = {**options, "cwd": cwd}
        runner = await supervisor.spawn(f"{WORKERS}:{worker[0]}", *worker[1:], **options)
        status = await runner.wait()
    assert isinstance(status, RunnerFailed), status
    return status


@pytest.mark.asyncio
@pytest.mark.parametrize("case", CASES)
async def test_child_failure_is_the_verdict(case: ChildCase, tmp_path: Path) -> None:
    """The child's real failure gives the verdict and ``in_child``; the wrapper stays in the chain."""
    status = await _run(case.worker, case.options, tmp_path)
    verdict = f"{status.category}/{status.subcategory}"
    assert verdict == case.verdict, (status.summary, status.rule, status.stderr_tail[-8:])
    if case.child_signal is not None:
        assert status.in_child is not None
        assert status.in_child.signal == case.child_signal
        assert status.summary.startswith(f"{verdict} in {status.in_child.label()}: ")
    else:
        assert status.summary.startswith(verdict)
    if case.child_name is not None:
        assert status.in_child is not None
        assert status.in_child.name is not None
        assert status.in_child.name.startswith(case.child_name)
    if case.pid_known:
        assert status.in_child is not None
        assert status.in_child.pid is not None
        assert f"(pid {status.in_child.pid})" in status.summary
    if case.wrapper is not None:
        assert status.termination_error is not None
        chain = [info.type for info in status.termination_error.chain()]
        assert case.wrapper in chain, chain
    assert status.summary.split(": ", 1)[1].strip()


@pytest.mark.asyncio
async def test_pool_child_oom_killed_in_the_runners_own_cgroup(
    cgroup_host: CgroupHost, tmp_path: Path
) -> None:
    """A pool child the kernel OOM-kills inside the runner's own memory cgroup (--memory-max):
    memory/oom_killed from that cgroup's exact counter, the wrapper kept in the chain."""
    if not (cgroup_host.v1_bases.get("memory") or "memory" in cgroup_host.v2_controllers):
        pytest.skip(f"no memory cgroup of the runner's own here: {cgroup_host.reason}")
    status = await _run(("futures_pool_hoard",), SpawnOptions(), tmp_path, memory_max=96 << 20)
    assert (status.category, status.subcategory) == ("memory", "oom_killed"), status.summary
    assert status.oom_killed is True
    assert status.in_child is not None
    assert status.termination_error is not None
    assert status.termination_error.type == "BrokenProcessPool"


@pytest.mark.asyncio
async def test_pool_child_oom_killed_in_a_shared_cgroup(
    oom_cgroup: Path | None, tmp_path: Path
) -> None:
    """Without a cgroup of its own (cgroup='off'), the worker's shared v1 memory group counts the
    child's OOM kill, and it still decides the verdict."""
    if oom_cgroup is None:
        pytest.skip("no writable cgroup v1 memory controller on this host")
    status = await _run(
        ("futures_pool_oom", str(oom_cgroup)), SpawnOptions(), tmp_path, cgroup="off"
    )
    assert (status.category, status.subcategory) == ("memory", "oom_killed"), status.summary
    assert status.oom_killed is True
    assert status.in_child is not None
    assert status.termination_error is not None
    assert status.termination_error.type == "BrokenProcessPool"


def _diagnostic(signature_id: str, line: str) -> list[Diagnostic]:
    found = diagnose_line(signature_by_id(signature_id), line)
    assert found is not None
    return [found]


@pytest.mark.parametrize(
    ("signature_id", "line", "expected"),
    [
        pytest.param(
            "subprocess.died_with_signal",
            "subprocess.CalledProcessError: Command '['/usr/bin/toktx', '--t2', "
            "'out.ktx2', 'in.png']' died with <Signals.SIGSEGV: 11>.",
            {"name": "toktx", "signal": "SIGSEGV", "exit": "killed by signal SIGSEGV (11)"},
            id="subprocess-list-command",
        ),
        pytest.param(
            "subprocess.nonzero_exit",
            "subprocess.CalledProcessError: Command 'ffmpeg -i in.mp4 out.webm' returned "
            "non-zero exit status 234.",
            {"name": "ffmpeg", "signal": None, "exit": "exited with code 234"},
            id="subprocess-shell-string",
        ),
        pytest.param(
            "torch.dataloader_killed",
            "RuntimeError: DataLoader worker (pid 3151) is killed by signal: Killed. ",
            {"name": "DataLoader worker", "pid": 3151, "signal": "SIGKILL"},
            id="dataloader-killed-in-words",
        ),
        pytest.param(
            "futures.process_exit_code",
            "Process 4242 terminated abruptly with exit code -9",
            {"pid": 4242, "signal": "SIGKILL"},
            id="futures-312-exit-code",
        ),
        pytest.param(
            "loky.terminated_worker",
            "The exit codes of the workers are {EXIT(1)}",
            {"signal": None, "exit": "exited with code 1"},
            id="loky-exit-code",
        ),
    ],
)
def test_find_child_reads_the_wrapper(
    signature_id: str, line: str, expected: dict[str, object]
) -> None:
    """Who died and how comes from the wrapper's own text, in stderr or in the exception chain."""
    from_stderr = find_child([], _diagnostic(signature_id, line), None)
    message = line.split(": ", 1)[1] if line.startswith(("subprocess", "Runtime")) else line
    from_chain = find_child([ExceptionInfo(type="X", module="m", message=message)], [], None)
    for child in (from_stderr, from_chain):
        assert child is not None
        assert {key: getattr(child, key) for key in expected} == expected


def test_a_fault_dump_of_the_worker_itself_is_not_a_child() -> None:
    """The worker's own faulthandler dump (it died of that signal) names no child; another does."""
    dump = _diagnostic("faulthandler.segfault", "Fatal Python error: Segmentation fault")
    assert find_child([], dump, "SIGSEGV") is None
    child = find_child([], dump, None)
    assert child is not None
    assert (child.signal, child.label()) == ("SIGSEGV", "a child process")
    assert find_child([ExceptionInfo(type="ValueError", module="builtins")], [], None) is None


def test_child_traceback_inside_a_wrapper_is_classified_first() -> None:
    """torch's ProcessRaisedException carries the child's traceback: the child's exception wins."""
    message = (
        "\n\n-- Process 1 terminated with the following error:\nTraceback (most recent call "
        'last):\n  File "/w/train.py", line 9, in _wrap\n    fn(i, *args)\n'
        "KeyError: 'labels'\n"
    )
    wrapper = ExceptionInfo(
        type="ProcessRaisedException",
        module="torch.multiprocessing.spawn",
        mro_names=["torch.multiprocessing.spawn.ProcessRaisedException", "Exception"],
        message=message,
    )
    assert [e.type for e in child_exceptions(wrapper.chain())] == ["KeyError"]
    verdict = Classifier().classify(Facts(termination_error=wrapper))
    assert (verdict.category, verdict.subcategory) == ("python", "KeyError")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("\x1b[31mValueError: bad shard\x1b[0m", "ValueError: bad shard", id="ansi"),
        pytest.param(
            "ProcessRaisedException: \n\n-- Process 0 terminated with the following error:",
            "ProcessRaisedException: -- Process 0 terminated with the following error:",
            id="leading-newline",
        ),
        pytest.param(
            "ChildFailedError: \n" + "=" * 60 + "\ntrain.py FAILED\n" + "-" * 60,
            "ChildFailedError: train.py FAILED",
            id="torchelastic-rule-lines",
        ),
        pytest.param("\n\n   \n", "", id="no-words"),
    ],
)
def test_summary_line(text: str, expected: str) -> None:
    """Summaries drop colour codes and empty or ruler lines, and keep a bare ``Type:`` joined."""
    assert summary_line(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("SIGBUS", "SIGBUS"), ("Segmentation fault", "SIGSEGV"), ("-9", "SIGKILL"), ("99", "SIG99")],
)
def test_signal_name_of(text: str, expected: str) -> None:
    """Signals come as names, strsignal() words or numbers; all become names."""
    assert signal_name_of(text) == expected


NODE_TAIL = [
    "/srv/derive/encode.js:4",
    '    throw new TypeError("texture has no levels");',
    "    ^",
    "",
    "TypeError: texture has no levels",
    "    at Object.<anonymous> (/srv/derive/encode.js:4:11)",
    "",
    "Node.js v20.20.2",
]


@pytest.mark.parametrize(
    ("line", "where", "expected"),
    [
        pytest.param("Node.js v20.20.2", "error_above", NODE_TAIL[4], id="node-error-above"),
        pytest.param(NODE_TAIL[0], "next_line", NODE_TAIL[1], id="next-line"),
        pytest.param("Node.js v20.20.2", "line", "Node.js v20.20.2", id="same-line"),
        pytest.param("not in the tail", "next_line", "not in the tail", id="line-not-in-tail"),
    ],
)
def test_message_line(line: str, where: MessageAt, expected: str) -> None:
    """The failure's own words are found where the catalogue entry says they are."""
    assert message_line(line, where, NODE_TAIL) == expected


def test_describe_keeps_a_childs_attributes() -> None:
    """The runner keeps CalledProcessError's returncode, cmd and captured stderr (its end)."""
    command = [sys.executable, "-c", "import sys; sys.exit('x' * 10000 + ' disk is gone')"]
    with pytest.raises(subprocess.CalledProcessError) as caught:
        subprocess.run(command, check=True, capture_output=True, timeout=60)
    info = describe_exception(caught.value)
    assert info.attributes["returncode"] == 1
    assert info.attributes["cmd"] == repr(command)
    stderr = info.attributes["stderr"]
    assert isinstance(stderr, str)
    assert stderr.rstrip().endswith("disk is gone")
    assert len(stderr) <= 4096
    child = find_child(info.chain(), [], None)
    assert child is not None
    assert (child.cmdline, child.exit) == (command, "exited with code 1")


@pytest.mark.parametrize(
    "last_line",
    [
        pytest.param("\x1b[36m(pid=4242)\x1b[0m \x1b[31mValueError: bad shard\x1b[0m", id="ansi"),
        pytest.param(
            "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ", id="empty"
        ),
    ],
)
def test_analyze_summary_is_never_empty(last_line: str, tmp_path: Path) -> None:
    """``crashsight analyze`` summarises coloured or empty-message errors with words."""
    log = tmp_path / "train.log"
    log.write_text(
        "Traceback (most recent call last):\n"
        '  File "/w/run.py", line 3, in <module>\n'
        "    main()\n"
        f"{last_line}\n"
        "============================================================\n"
    )
    analysis = analyze_file(log).analysis
    assert analysis is not None
    shown = analysis.summary.split(": ", 1)[1]
    assert shown.strip()
    assert "\x1b" not in shown


def test_classifier_finds_the_child_itself() -> None:
    """Without a supervisor (a log analysed later), a wrapper's signal still decides the verdict."""
    wrapper = ExceptionInfo(
        type="RuntimeError",
        module="builtins",
        message="DataLoader worker (pid 3151) is killed by signal: Segmentation fault. ",
    )
    verdict = Classifier().classify(Facts(termination_error=wrapper, exit_code=1))
    assert (verdict.category, verdict.subcategory) == ("crash", "segfault")
