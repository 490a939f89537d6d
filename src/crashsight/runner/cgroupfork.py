"""Forking the zygote's runners straight into their cgroups: no migration, so no wait.

Moving a process into a cgroup (a write to ``cgroup.procs``) takes the kernel's
``cgroup_threadgroup_rwsem`` for writing, which waits for an RCU grace period unless another move
ran just before: 6-20 ms a move on the 2-core benchmark machine, more than a forked runner needs to
start without any cgroup (8 ms). Two kernel paths place a process without that lock:

- ``clone3`` with ``CLONE_INTO_CGROUP`` (Linux 5.7) creates the child in its v2 group (0.2 ms);
- a thread moving itself (``0``) through a v1 hierarchy's ``tasks`` file moves one thread, which
  needs no lock on the whole thread group (0.05 ms).

So the zygote, single-threaded (it checks after its preload, and a v1 move of ``0`` moves only
the calling thread), moves its one thread into the runner's v1 groups, clones the child into the
runner's v2 group, and moves itself back: the child inherits the v1 groups and is born in the v2
one, so none of its code runs outside them. A v1 group with a limit the zygote's own thread could
hit (a memory limit: the fork's kernel memory is charged where the forking thread is) is not
joined this way; the supervisor moves such a runner at the start gate instead.

glibc has no clone3 wrapper, so the call is made raw, and does what glibc's own ``fork`` does
around its clone: ``CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID`` on the calling thread's id slot
(which ``PR_GET_TID_ADDRESS`` names), so that the child's thread descriptor holds its own thread
id; the child's robust-futex list registered again (the kernel starts a new process without one,
and a robust mutex it held when it died would then never be handed on); CPython's fork hooks
around it, as ``os.fork`` runs them (the audit event, the import lock, ``os.register_at_fork``
callbacks, the ``random`` reseed, the thread states). glibc's ``pthread_atfork`` handlers do not
run: libraries register them to reset other threads, their locks or a GPU context in the child,
and the zygote has neither other threads nor CUDA. Architectures whose robust-list syscall
numbers are not listed here, and free-threaded interpreters, are left to the gate. Standard
library only, like the rest of ``crashsight.runner``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import struct
import sys
from collections.abc import Sequence

__all__ = ["ForkFailed", "Unsupported", "fork_into"]

#: clone3's number is the same on every Linux architecture (asm-generic, Linux 5.3).
_SYS_CLONE3 = 435
_CLONE_CHILD_CLEARTID = 0x00200000
_CLONE_CHILD_SETTID = 0x01000000
_CLONE_INTO_CGROUP = 0x200000000
_PR_GET_TID_ADDRESS = 40
#: (set_robust_list, get_robust_list) by machine: unlike clone3's, these numbers differ.
_ROBUST_LIST = {"x86_64": (273, 274), "aarch64": (99, 100), "riscv64": (99, 100)}
#: What a kernel without clone3 or CLONE_INTO_CGROUP (before 5.7) or a seccomp profile that
#: forbids clone3 answers (Docker's: EPERM before 20.10.10, ENOSYS since).
_NOT_HERE = frozenset({errno.ENOSYS, errno.E2BIG, errno.EINVAL, errno.EPERM})
#: The fork itself failed for want of a resource (a process limit, memory): not the group's fault.
_NO_RESOURCE = frozenset({errno.EAGAIN, errno.ENOMEM})


class Unsupported(Exception):
    """This kernel or sandbox cannot clone into a cgroup; the caller moves the child instead."""


class ForkFailed(Exception):
    """The clone failed as a fork can (EAGAIN, ENOMEM): no child, and no group to blame."""


def fork_into(v2_folder: str | None, v1_moves: Sequence[tuple[str, str]]) -> int:
    """Fork a child born in ``v2_folder`` and in the v1 groups of ``v1_moves``.

    Args:
        v2_folder: The runner's v2 group, or None for a plain fork (a host with v1 groups only,
            or no cgroup at all).
        v1_moves: For each v1 hierarchy, the ``tasks`` file of the runner's group and that of the
            group this process returns to.

    Returns:
        0 in the child, its pid in this process, as `os.fork`.

    Raises:
        Unsupported: clone3 into a cgroup is not possible here (this process is back home).
        ForkFailed: The fork or clone failed as any fork can (this process is back home).
        OSError: The kernel refused a group (this process is back home, no child was made).
        RuntimeError: This process could not return to its own v1 groups. It must not fork again
            from a runner's group: the zygote exits (its runners with it) and the supervisor
            starts a new one.
    """
    homes: list[str] = []
    pid = -1
    try:
        for runner_tasks, home_tasks in v1_moves:
            _move_self(runner_tasks)
            homes.append(home_tasks)
        pid = _fork() if v2_folder is None else _clone_into(v2_folder)
    finally:
        if pid != 0:
            _return_home(homes)
    return pid


def _return_home(homes: list[str]) -> None:
    for home_tasks in reversed(homes):
        try:
            _move_self(home_tasks)
        except OSError as exc:
            raise RuntimeError(f"cannot return to {home_tasks}: {exc}") from exc


def _fork() -> int:
    """A plain fork; its failures are the fork's own (a process limit, memory), not a group's."""
    try:
        return os.fork()
    except OSError as exc:
        raise ForkFailed(exc.strerror or str(exc)) from exc


def _move_self(tasks: str) -> None:
    """Move the calling thread, this process's only one, into the v1 group of ``tasks``."""
    fd = os.open(tasks, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)


def _clone_into(folder: str) -> int:
    numbers = _ROBUST_LIST.get(os.uname().machine)
    if numbers is None:
        raise Unsupported(f"no robust-list syscall numbers for {os.uname().machine}")
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
    if is_gil_enabled is not None and not is_gil_enabled():
        raise Unsupported("a free-threaded interpreter")
    libc = ctypes.PyDLL(None, use_errno=True)  # PyDLL: the GIL stays held, as os.fork holds it
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    tid_slot = ctypes.c_void_p()
    if libc.prctl(_PR_GET_TID_ADDRESS, ctypes.byref(tid_slot), 0, 0, 0) != 0 or not tid_slot.value:
        raise Unsupported("the kernel does not name the thread-id slot (PR_GET_TID_ADDRESS)")
    set_robust, get_robust = (ctypes.c_long(number) for number in numbers)
    robust_head, robust_size = ctypes.c_void_p(), ctypes.c_size_t()
    if syscall(get_robust, 0, ctypes.byref(robust_head), ctypes.byref(robust_size)) != 0:
        raise Unsupported("the kernel does not give the robust-futex list (get_robust_list)")
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        flags = _CLONE_CHILD_SETTID | _CLONE_CHILD_CLEARTID | _CLONE_INTO_CGROUP
        # struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size,
        # tls, set_tid, set_tid_size, cgroup.
        args = struct.pack("11Q", flags, 0, tid_slot.value, 0, signal.SIGCHLD, 0, 0, 0, 0, 0, fd)
        clone3, size = ctypes.c_long(_SYS_CLONE3), ctypes.c_size_t(len(args))
        api = ctypes.pythonapi
        sys.audit("os.fork")
        api.PyOS_BeforeFork()
        pid: int = syscall(clone3, args, size)
        error = ctypes.get_errno()
        if pid == 0:
            syscall(set_robust, robust_head, robust_size)
            api.PyOS_AfterFork_Child()
        else:
            api.PyOS_AfterFork_Parent()
    finally:
        os.close(fd)
    if pid < 0:
        if error in _NOT_HERE:
            raise Unsupported(f"clone3 into a cgroup failed: {os.strerror(error)}")
        if error in _NO_RESOURCE:
            raise ForkFailed(os.strerror(error))
        raise OSError(error, os.strerror(error), folder)
    return pid
