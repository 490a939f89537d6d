"""Wrappers: what a worker raises when one of its own child processes dies.

A pool, a DataLoader, ``torch.multiprocessing.spawn`` or ``subprocess.run(check=True)`` turns the
death of a child into an exception of the parent. That exception is a consequence, so every entry
here is evidence only: it never gives the verdict alone. What it contributes is who died and how,
through named groups that `crashsight.diagnostics.children` reads:

* ``child_pid``, ``child_name``, ``child_cmd``: which child (a pid, a name, its command line);
* ``child_signal``: the signal that killed it, as a name (``SIGSEGV``) or in words as
  ``strsignal()`` says it (``Segmentation fault``);
* ``child_exit_code``: its exit status (negative: killed by that signal, Python's convention).

The classifier treats a child's signal like the worker's own (crash/segfault, OOM kill), and the
child's own texts on the inherited stderr (faulthandler's dump, a runtime's panic) decide first.

Part of the signature catalogue (see `crashsight.diagnostics.catalogue`): data only.
"""

from __future__ import annotations

from ..models import Signature

__all__ = ["SIGNATURES"]

_FUTURES = "CPython Lib/concurrent/futures/process.py _ExecutorManagerThread.terminate_broken()"
_DATALOADER_CPP = "PyTorch torch/csrc/DataLoader.cpp SIGCHLD handler (torch >= 1.0; 2.13 text)"
_SPAWN = "PyTorch torch/multiprocessing/spawn.py ProcessContext.join() (torch >= 1.0; 2.13 text)"
_SUBPROCESS = "CPython Lib/subprocess.py CalledProcessError.__str__ (Python >= 3.6)"
_LOKY = "loky loky/process_executor.py _ExecutorManagerThread + backend/utils.py _format_exitcodes (loky >= 2.0; joblib vendors it)"
_HINT = "A child process of the worker died; the lines it printed just before (its traceback, faulthandler dump or panic) say why."

# fmt: off
SIGNATURES: tuple[Signature, ...] = (
    Signature(
        id="futures.broken_process_pool", category="crash", subcategory="child_died", evidence_only=True,
        pattern=r"A process in the process pool was terminated abruptly|A child process terminated abruptly, the process pool is not usable anymore",
        literals=("terminated abruptly",),
        description="A concurrent.futures ProcessPoolExecutor worker died (a signal or os._exit) while a future ran; every pending future fails with BrokenProcessPool.",
        hint=_HINT, source=_FUTURES,
        samples=(
            "concurrent.futures.process.BrokenProcessPool: A process in the process pool was terminated abruptly while the future was running or pending.",
            "concurrent.futures.process.BrokenProcessPool: A child process terminated abruptly, the process pool is not usable anymore",
        ),
    ),
    Signature(
        id="futures.process_exit_code", category="crash", subcategory="child_died", evidence_only=True,
        pattern=r"Process (?P<child_pid>\d+) terminated abruptly with exit code (?P<child_exit_code>-?\d+)",
        literals=("terminated abruptly with exit code",),
        description="The exit status of the pool worker that died, in BrokenProcessPool's cause (Python >= 3.12).",
        hint=_HINT, source=f"{_FUTURES} (Python >= 3.12)",
        samples=("Process 4242 terminated abruptly with exit code -11",),
    ),
    Signature(
        id="torch.dataloader_killed", category="crash", subcategory="child_died", evidence_only=True,
        pattern=r"(?P<child_name>DataLoader worker) \(pid (?P<child_pid>\d+)\) is killed by signal: (?P<child_signal>(?!Bus error)[A-Z][\w ]*\w)",
        literals=("is killed by signal: ",),
        description="A DataLoader worker process was killed by a signal (a segfault in a transform, the OOM killer's SIGKILL).",
        hint=_HINT, source=_DATALOADER_CPP,
        samples=(
            "RuntimeError: DataLoader worker (pid 1234) is killed by signal: Segmentation fault. ",
            "RuntimeError: DataLoader worker (pid 3151) is killed by signal: Killed. ",
        ),
    ),
    Signature(
        id="torch.dataloader_exited", category="crash", subcategory="child_died", evidence_only=True,
        pattern=r"(?P<child_name>DataLoader worker) \(pids?(?:\(s\))? (?P<child_pid>\d+)[\d, ]*\) exited unexpectedly(?: with exit code (?P<child_exit_code>-?\d+))?",
        literals=("exited unexpectedly",),
        description="A DataLoader worker process exited without handing back its batch.",
        hint=_HINT,
        source=f"{_DATALOADER_CPP}; torch/utils/data/dataloader.py _try_get_data (pid(s) text)",
        samples=(
            "RuntimeError: DataLoader worker (pid 4242) exited unexpectedly with exit code 1. Details are lost due to multiprocessing. Rerunning with num_workers=0 may give better error trace.",
            "RuntimeError: DataLoader worker (pid(s) 4242, 4243) exited unexpectedly",
        ),
    ),
    Signature(
        id="torch.mp_process_exited", category="crash", subcategory="child_died", evidence_only=True,
        pattern=r"(?P<child_name>process \d+) terminated with (?:signal (?P<child_signal>SIG\w+)|exit code (?P<child_exit_code>-?\d+))",
        literals=("terminated with signal", "terminated with exit code"),
        description="A process started by torch.multiprocessing.spawn died without raising (ProcessExitedException).",
        hint=_HINT, source=_SPAWN,
        samples=(
            "torch.multiprocessing.spawn.ProcessExitedException: process 1 terminated with signal SIGSEGV",
            "torch.multiprocessing.spawn.ProcessExitedException: process 0 terminated with exit code 3",
        ),
    ),
    Signature(
        id="torch.mp_process_raised", category="crash", subcategory="child_died", evidence_only=True,
        pattern=r"-- (?P<child_name>Process \d+) terminated with the following error:",
        literals=("terminated with the following error:",),
        description="A process started by torch.multiprocessing.spawn raised; its traceback follows in the message (ProcessRaisedException).",
        hint=_HINT, source=_SPAWN,
        samples=("-- Process 0 terminated with the following error:",),
    ),
    Signature(
        id="subprocess.died_with_signal", category="crash", subcategory="child_died", evidence_only=True,
        pattern=r"Command '(?P<child_cmd>.*)' died with (?:<Signals\.(?P<child_signal>SIG\w+): \d+>|unknown signal (?P<child_signal_number>\d+))",
        literals=("' died with ",),
        description="A command run with subprocess (check=True) was killed by a signal (CalledProcessError, negative returncode).",
        hint=_HINT, source=_SUBPROCESS,
        samples=(
            "subprocess.CalledProcessError: Command '['toktx', '--t2', 'out.ktx2', 'in.png']' died with <Signals.SIGSEGV: 11>.",
            "subprocess.CalledProcessError: Command 'ffmpeg -i in.mp4 out.webm' died with <Signals.SIGKILL: 9>.",
            "subprocess.CalledProcessError: Command '['toktx', 'in.png']' died with unknown signal 32.",
        ),
    ),
    Signature(
        id="subprocess.nonzero_exit", category="crash", subcategory="child_died", evidence_only=True,
        pattern=r"Command '(?P<child_cmd>.*)' returned non-zero exit status (?P<child_exit_code>\d+)",
        literals=("returned non-zero exit status",),
        description="A command run with subprocess (check=True) exited with a non-zero status (CalledProcessError).",
        hint="The command's own stderr (inherited, or in the exception's stderr when captured) says why it failed.",
        source=_SUBPROCESS,
        samples=("subprocess.CalledProcessError: Command '['toktx', 'out.ktx2', 'in.png']' returned non-zero exit status 1.",),
    ),
    Signature(
        id="loky.terminated_worker", category="crash", subcategory="child_died", evidence_only=True,
        pattern=r"The exit codes of the workers are \{(?:(?P<child_signal>SIG\w+)|EXIT|UNKNOWN)\((?P<child_exit_code>-?\d+)\)",
        literals=("The exit codes of the workers are",),
        description="A loky (joblib) worker process died; TerminatedWorkerError lists the exit codes of the workers that ended.",
        hint=_HINT, source=_LOKY,
        samples=(
            "The exit codes of the workers are {SIGSEGV(-11)}",
            "The exit codes of the workers are {SIGKILL(-9), EXIT(1)}",
        ),
    ),
    Signature(
        id="multiprocessing.process_raised", category="crash", subcategory="child_died", evidence_only=True,
        pattern=r"Process (?P<child_name>(?:Fork|Spawn|ForkServer)?(?:PoolWorker|Process)-[\d:]+):$",
        literals=("PoolWorker-", "Process-"),
        description="A multiprocessing child ended with an uncaught exception; its traceback follows on stderr.",
        hint=_HINT, source="CPython Lib/multiprocessing/process.py BaseProcess._bootstrap()",
        samples=("Process ForkPoolWorker-1:", "Process SpawnProcess-2:", "Process Process-1:2:"),
    ),
)
# fmt: on
