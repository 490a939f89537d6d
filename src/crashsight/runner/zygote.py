"""The fork server's process: ``python -m crashsight.runner.zygote CONTROL_FD STATUS_FD [MODULE...]``.

A cold runner pays for starting an interpreter, importing the runner and importing whatever the
worker imports (torch: seconds) on every start and every restart. The zygote pays once: it imports
the runner bootstrap and the ``preload`` modules, then forks each runner from itself, so a runner
starts with all of that already in memory::

    supervisor ──control socket: request (JSON line + the runner's descriptors)──► zygote
               ◄──── {"pid": N}, or {"join_error": ...} / {"unsupported": ...} / {"error": ...}
               ◄──status socket: {"pid": N, "status": S, "maxrss": KiB}, one per exit──
    zygote ──fork (into the runner's cgroups, `cgroupfork`)──► runner: setsid, its own fds,
                                                      env and cwd, then the usual bootstrap

A forked runner is the zygote's child, not the supervisor's, so the zygote reaps it and reports the
raw wait status and peak RSS over the status socket: what ``wait4`` would have told the supervisor.

Deaths cascade, as they do for cold runners: the zygote gets SIGKILL when the supervisor dies and
each runner gets SIGKILL when its zygote dies (``PR_SET_PDEATHSIG``, Linux); the runner's channel
watch and the guardian cover the rest. Forking is only safe from a single-threaded process, so the
zygote refuses to serve (and says why) when a preloaded module left a thread running or
initialised CUDA. Standard library only, like the rest of ``crashsight.runner``.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import select
import signal
import socket
import sys
import threading
import traceback
from typing import NoReturn

from . import bootstrap, cgroupfork
from .channel import CHANNEL_FD_ENV, LIFELINE_FD_ENV, START_GATE_ENV

__all__ = ["main", "unsafe_state"]

_PR_SET_PDEATHSIG = 1
#: The most descriptors a request carries: channel, lifeline, stdout, stderr, and optionally stdin
#: and gate; the request's ``fds`` names them in order.
_MAX_FDS = 6


def main(argv: list[str]) -> NoReturn:
    """Preload, report ready (or why not), then serve fork requests until the control closes."""
    control = socket.socket(fileno=int(argv[0]))
    status = socket.socket(fileno=int(argv[1]))
    supervisor = os.getppid()
    _die_with_parent(supervisor)
    # What the gc module's documentation prescribes for fork without exec: no collection in the
    # zygote (it would leave freed holes in pages the runners share), and every object the
    # preload made frozen, so that no runner's collections write to them. Without it each forked
    # runner copied most of the preloaded heap: 300 failing runners took 29.4 s of CPU, 16.2 with it.
    gc.disable()
    problem = _preload(argv[2:]) or unsafe_state()
    _send_line(control, {"error": problem} if problem else {"ready": os.getpid()})
    if problem:
        raise SystemExit(1)
    gc.freeze()
    request = _serve(control, status)
    # Only a forked runner gets here, with the zygote's loop and sockets gone.
    _become_runner(request)
    args: list[str] = request["args"]  # type: ignore[assignment]
    bootstrap.main(args)


def unsafe_state() -> str | None:
    """Why forking from this process would be unsafe, or None when it is safe.

    A fork copies only the calling thread: a lock another thread held stays locked forever in the
    child. CUDA cannot be used in a child forked after it was initialised (torch says so itself).
    """
    threads = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
    if threads:
        return f"threads are running after the preload: {', '.join(sorted(threads))}"
    native = _native_thread_count()
    if native > 1:
        return (
            f"{native - 1} native threads are running after the preload (started by a C "
            "extension); forking would copy none of them"
        )
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is not None and cuda.is_initialized():
        return "CUDA is initialised after the preload; a forked child cannot use it"
    return None


def _native_thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1  # no procfs (macOS): the threading check above is all there is


def _preload(modules: list[str]) -> str | None:
    """Import ``modules``; return the traceback of the first that fails."""
    for name in modules:
        try:
            __import__(name)
        except BaseException as exc:  # whatever it is, the supervisor must hear it
            text = "".join(traceback.format_exception(exc)).rstrip()
            return f"importing preload module {name!r} failed:\n{text}"
    return None


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when ``parent`` dies (Linux); exit now if it already has."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(128 + signal.SIGKILL)


def _serve(control: socket.socket, status: socket.socket) -> dict[str, object]:
    """Fork runners on request and report their exits; return only in a forked child."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for the runners, not for us
    while True:
        readable, _, _ = select.select([control.fileno(), wake_r], [], [])
        if wake_r in readable:
            os.read(wake_r, 4096)
            _reap(status)
        if control.fileno() not in readable:
            continue
        request, fds = _read_request(control)
        if request is None:
            raise SystemExit(0)  # the supervisor closed: runners die with us (PDEATHSIG)
        zygote = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid, reply = _fork(request.get("cgroup"))
        if pid == 0:
            signal.set_wakeup_fd(-1)
            for fd in (wake_r, wake_w):
                os.close(fd)
            control.close()
            status.close()
            _die_with_parent(zygote)
            request["fds"] = dict(zip(request["fds"], fds, strict=True))  # type: ignore[call-overload]
            return request
        for fd in fds:
            os.close(fd)
        _send_line(control, reply)


def _fork(cgroup: object) -> tuple[int, dict[str, object]]:
    """Fork a runner, into its cgroups when the request names them (`cgroupfork`).

    Returns the pid (0 in the child) and the reply: ``{"pid": N}``, or, when no child was made,
    ``{"unsupported": why}`` (the supervisor moves it instead), ``{"join_error": strerror}`` (the
    kernel refused a group) or ``{"error": why}`` (the fork failed, as a cold spawn's can).
    """
    v2, v1 = (cgroup["v2"], cgroup["v1"]) if isinstance(cgroup, dict) else (None, [])
    try:
        pid = cgroupfork.fork_into(v2, [tuple(pair) for pair in v1])
    except cgroupfork.Unsupported as exc:
        return -1, {"unsupported": str(exc)}
    except cgroupfork.ForkFailed as exc:
        return -1, {"error": f"fork failed: {exc}"}
    except OSError as exc:
        return -1, {"join_error": exc.strerror or str(exc)}
    return pid, {"pid": pid}


def _reap(status: socket.socket) -> None:
    """Report every exited child: pid, raw wait status, peak RSS (KiB on Linux)."""
    while True:
        try:
            pid, wait_status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send_line(status, {"pid": pid, "status": wait_status, "maxrss": usage.ru_maxrss})


def _read_request(control: socket.socket) -> tuple[dict[str, object] | None, list[int]]:
    """One JSON line with its descriptors, or (None, []) at end-of-file."""
    data, fds, _, _ = socket.recv_fds(control, 1 << 20, _MAX_FDS)
    while data and not data.endswith(b"\n"):
        more = control.recv(1 << 20)
        if not more:
            break
        data += more
    if not data:
        return None, []
    request: dict[str, object] = json.loads(data)
    return request, list(fds)


def _send_line(sock: socket.socket, message: dict[str, object]) -> None:
    sock.sendall(json.dumps(message).encode() + b"\n")


def _become_runner(request: dict[str, object]) -> None:
    """Turn this forked child into what a cold spawn would have started."""
    os.setsid()
    fds: dict[str, int] = request["fds"]  # type: ignore[assignment]
    stdin = fds.get("stdin")
    if stdin is None:
        stdin = os.open(os.devnull, os.O_RDONLY)
    for fd, target in ((stdin, 0), (fds["stdout"], 1), (fds["stderr"], 2)):
        os.dup2(fd, target)
        os.close(fd)
    gc.enable()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # what a fresh interpreter has
    env: dict[str, str] = request["env"]  # type: ignore[assignment]
    os.environ.clear()
    os.environ.update(env)
    os.environ[CHANNEL_FD_ENV] = str(fds["channel"])
    os.environ[LIFELINE_FD_ENV] = str(fds["lifeline"])
    if "gate" in fds:
        # The bootstrap waits there first, as a cold runner does, until it is in its cgroup.
        os.environ[START_GATE_ENV] = str(fds["gate"])
    cwd = request.get("cwd")
    if isinstance(cwd, str):
        os.chdir(cwd)
    # What `python -m` would have put first on sys.path, and the runner's own PYTHONPATH.
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
    sys.path[0:1] = [os.getcwd(), *extra]


if __name__ == "__main__":
    main(sys.argv[1:])
