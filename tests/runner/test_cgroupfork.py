"""Forking straight into a runner's cgroups (the zygote's way), against the real kernel.

Each case runs in a fresh single-threaded interpreter, as the zygote is, and reports as JSON what
the forked child saw and where the forking process ended up.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

from crashsight.supervisor.cgroup import RunnerCgroup

#: Forks with `fork_into` (argv: the placement as JSON); the child reports its cgroups, whether
#: its thread descriptor holds its own thread id, whether a signal it raises at itself arrives,
#: and whether the `os.register_at_fork` hooks ran; the parent adds its own cgroups afterwards.
FORKER = """
import ctypes, json, os, signal, sys, threading
from crashsight.runner import cgroupfork

placement = json.loads(sys.argv[1])
hooked = []
os.register_at_fork(after_in_child=lambda: hooked.append(True))
r, w = os.pipe()
try:
    pid = cgroupfork.fork_into(placement["v2"], [tuple(p) for p in placement["v1"]])
except (OSError, cgroupfork.Unsupported) as exc:
    print(json.dumps({"error": type(exc).__name__, "text": str(exc),
                      "parent": open("/proc/self/cgroup").read()}))
    raise SystemExit(0)
if pid == 0:
    slot = ctypes.c_void_p()
    ctypes.CDLL(None).prctl(40, ctypes.byref(slot), 0, 0, 0)  # PR_GET_TID_ADDRESS
    raised = []
    signal.signal(signal.SIGUSR1, lambda *_: raised.append(True))
    signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
    seen = {
        "cgroup": open("/proc/self/cgroup").read(),
        "own_tid": ctypes.c_int.from_address(slot.value).value == threading.get_native_id(),
        "raised": raised == [True],
        "hooked": hooked == [True],
    }
    os.write(w, json.dumps(seen).encode())
    os._exit(0)
os.close(w)
child = json.loads(os.read(r, 65536))
_, status = os.waitpid(pid, 0)
print(json.dumps({"child": child, "status": status, "parent": open("/proc/self/cgroup").read()}))
"""


def _placement(groups: RunnerCgroup) -> dict[str, object]:
    return {
        "v2": str(groups.v2),
        "v1": [
            (str(folder / "tasks"), str(groups.host.v1_bases[name] / "tasks"))
            for name, folder in groups.v1.items()
        ],
    }


def _fork(placement: dict[str, object]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", FORKER, json.dumps(placement)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _groups(text: object) -> dict[str, str]:
    """``/proc/PID/cgroup`` as controller (``""`` for v2) -> path."""
    assert isinstance(text, str)
    found = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            found[name] = path
    return found


def test_the_child_is_born_in_every_group_and_the_parent_stays_home(
    runner_cgroup: RunnerCgroup,
) -> None:
    own = _groups(Path("/proc/self/cgroup").read_text())
    result = _fork(_placement(runner_cgroup))
    child = result["child"]
    assert isinstance(child, dict)
    name = Path(str(runner_cgroup.v2)).name
    seen = _groups(child["cgroup"])
    assert seen[""].endswith(f"/{name}")
    for controller in runner_cgroup.v1:
        assert seen[controller].endswith(f"/{name}"), controller
    assert _groups(result["parent"]) == own, "the forking process went back to its own groups"
    assert child["own_tid"], "the child's thread descriptor holds the child's thread id"
    assert child["raised"], "a signal the child raises at its own thread reaches it"
    assert child["hooked"], "os.register_at_fork's child hooks ran, as after os.fork"
    assert result["status"] == 0


def test_a_refused_group_makes_no_child_and_leaves_the_parent_home(
    refusing_cgroup: RunnerCgroup,
) -> None:
    """A group removed before the fork (the kernel refuses it): OSError, nobody moved."""
    own = _groups(Path("/proc/self/cgroup").read_text())
    result = _fork(_placement(refusing_cgroup))
    assert result["error"] == "FileNotFoundError"
    assert _groups(result["parent"]) == own


#: The child locks a robust mutex in shared memory and dies holding it; the parent then asks for
#: it and prints the answer: EOWNERDEAD (130) when the child's robust-futex list was registered,
#: a timeout (110) when the kernel was never told, so that every later waiter hangs.
ROBUST = """
import ctypes, json, mmap, os, sys, time
from crashsight.runner import cgroupfork

class Timespec(ctypes.Structure):
    _fields_ = [("seconds", ctypes.c_long), ("nanoseconds", ctypes.c_long)]

placement = json.loads(sys.argv[1])
libc = ctypes.CDLL(None)
shared = mmap.mmap(-1, 4096, mmap.MAP_SHARED)
mutex = ctypes.c_void_p(ctypes.addressof(ctypes.c_char.from_buffer(shared)))
attr = ctypes.create_string_buffer(64)
libc.pthread_mutexattr_init(attr)
libc.pthread_mutexattr_setpshared(attr, 1)
libc.pthread_mutexattr_setrobust(attr, 1)
libc.pthread_mutex_init(mutex, attr)
pid = cgroupfork.fork_into(placement["v2"], [tuple(p) for p in placement["v1"]])
if pid == 0:
    libc.pthread_mutex_lock(mutex)
    os._exit(0)
os.waitpid(pid, 0)
deadline = Timespec(int(time.time()) + 5, 0)
print(libc.pthread_mutex_timedlock(mutex, ctypes.byref(deadline)))
"""


def test_a_robust_mutex_the_child_died_holding_is_handed_on(runner_cgroup: RunnerCgroup) -> None:
    """As after glibc's fork: the kernel hands a dead holder's robust mutex to the next waiter."""
    done = subprocess.run(
        [sys.executable, "-c", ROBUST, json.dumps(_placement(runner_cgroup))],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == str(errno.EOWNERDEAD)
