"""Every Python process of a runner's tree leaves its threads' stacks when it is stopped.

The supervisor gives each runner a folder in ``CRASHSIGHT_STACKS_DIR`` (inherited by everything
the runner starts) and the name of a dump signal in ``CRASHSIGHT_DUMP_SIGNAL``. At start-up, the
bootstrap or the ``.pth`` hook calls `install`, which

1. opens ``<folder>/<pid>.stacks`` and writes one header line naming the main thread
   (faulthandler prints thread ids, not names);
2. registers `faulthandler` on the dump signal (all threads, into that file). faulthandler's
   handler is C code that needs no lock, so it answers while the main thread is blocked in C: a
   lock, a socket ``recv``, ``time.sleep``, ``subprocess.wait``, a collective (what it reads of
   the other threads is another matter: see below);
3. registers it on SIGTERM too, chained to the default action, so a process stopped by someone
   else (torchrun stopping the surviving ranks, Kubernetes, a user) writes its stacks, then ends
   exactly as SIGTERM would have ended it.

Nothing runs while nothing hangs: no thread of this module's, no timer, only a signal disposition
and an open file.
A signal that already has a handler when `install` runs (an inherited ``SIG_IGN``, a handler set
earlier in start-up) is left alone, and a handler the program installs later with
``signal.signal`` replaces crashsight's: in both cases a ``#`` line in the file says so, and the
supervisor does not send that process the dump signal. SIGINT is left to Python: its
``KeyboardInterrupt`` traceback already says where the main thread was, and crashsight's own stops
send the dump signal before any other.

faulthandler's signal handler walks the threads' frames without the GIL, while the other threads
run: a thread deep in Python calls frees the frames the walk reads (measured: a SIGSEGV in about
one dump of 60 beside such a thread). So the runner itself, which has a channel, is not asked by
the signal: its watch thread reads the supervisor's request on the lifeline and calls
`dump_before_stop`, which dumps holding the GIL. The signal remains for the other processes of
the tree (children, pool workers: rarely several threads running Python at once), and for the
stop's SIGTERM in a runner that could not answer (stuck in C with the GIL held, when no other
thread can run Python, so the walk is safe). The kernel hands a process's signal to the main
thread by preference, and never to crashsight's thread, which blocks them
(`crashsight.runner.orphan`). On a free-threaded build the GIL does not hold the other threads:
there the dump's safety rests on the interpreter's own stop of the world in ``dump_traceback``.

A child forked by ``os.fork`` or ``multiprocessing`` gets a file and a registration of its own,
so parent and child never write into each other's file.

This module loads in every Python process of a runner's tree, so it imports only built-in modules:
``_signal`` rather than ``signal`` (whose enums load enum, functools and collections), and not
typing, contextlib or functools. A handler the program installs goes through ``_signal.signal``
whichever way it is set (``signal.signal``, asyncio's ``add_signal_handler``), which is where it
is noticed.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stub: see the module docstring
import _thread
import faulthandler
import os
import sys

TYPE_CHECKING = False  # not typing's: see the module docstring
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DEFAULT_DUMP_SIGNAL",
    "DUMP_REQUEST",
    "DUMP_SIGNAL_ENV",
    "HEADER_PREFIX",
    "NOTE_PREFIX",
    "OWN_HANDLER_NOTE",
    "STACKS_DIR_ENV",
    "STACKS_SUFFIX",
    "dump_before_stop",
    "install",
    "name_thread",
]

#: The folder where every process of the runner's tree writes ``<pid>.stacks``.
STACKS_DIR_ENV = "CRASHSIGHT_STACKS_DIR"
#: The name of the signal that asks a process for its stacks, e.g. ``SIGUSR2``.
DUMP_SIGNAL_ENV = "CRASHSIGHT_DUMP_SIGNAL"
#: SIGUSR2: on every POSIX system, its default action ends a process (so the supervisor only ever
#: sends it to processes that registered), and few programs use it (gunicorn's master does, to
#: re-exec itself: there, choose another with ``--dump-signal``).
DEFAULT_DUMP_SIGNAL = "SIGUSR2"
STACKS_SUFFIX = ".stacks"
#: The byte the supervisor writes on a runner's lifeline to ask the runner for its stacks.
DUMP_REQUEST = b"D"
#: First line of every file: ``# crashsight stacks pid=4242 main=0x7f... signal=SIGUSR2``.
HEADER_PREFIX = "# crashsight stacks "
#: A line that explains something about this process's stacks; faulthandler lines never start so.
NOTE_PREFIX = "# crashsight note: "
#: A thread crashsight started, by name: ``# crashsight thread 0x7f... crashsight-supervisor-watch``.
THREAD_PREFIX = "# crashsight thread "
#: The note that means "do not send me the dump signal": it would reach the program's handler.
OWN_HANDLER_NOTE = "own handler for "


class _Registration:
    """This process's file and the signals whose dump crashsight owns in it."""

    __slots__ = ("fd", "folder", "given_up", "names", "owned")

    def __init__(self, folder: str, dump_signal: int, dump_name: str) -> None:
        self.folder = folder
        self.fd = -1
        #: The dump signal, then SIGTERM: number -> name.
        self.names: dict[int, str] = {dump_signal: dump_name, _signal.SIGTERM: "SIGTERM"}
        #: Signals whose disposition is crashsight's faulthandler registration.
        self.owned: set[int] = set()
        #: Signals the program took over: never taken back, not even in a forked child.
        self.given_up: set[int] = set()

    def open_and_register(self) -> None:
        """Open this pid's file, write the header, and register on the signals still free."""
        pid = os.getpid()
        path = os.path.join(self.folder, f"{pid}{STACKS_SUFFIX}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
        try:
            self.fd = os.open(path, flags, 0o600)
        except OSError:
            self.fd = -1  # the folder is gone (its supervisor ended) or unwritable: no dumps
            return
        dump_name = next(iter(self.names.values()))
        self.write(f"{HEADER_PREFIX}pid={pid} main={_thread.get_ident():#x} signal={dump_name}")
        owned: set[int] = set()
        for sig, name in self.names.items():
            if sig in self.given_up:
                self.write(f"{NOTE_PREFIX}{OWN_HANDLER_NOTE}{name} (inherited); left alone")
                continue
            current = _signal.getsignal(sig)
            # Python reports SIG_DFL for a signal only faulthandler handles: a forked child sees
            # its parent's registration as free, and takes it over for its own file.
            if current != _signal.SIG_DFL:
                self.write(
                    f"{NOTE_PREFIX}{OWN_HANDLER_NOTE}{name} ({_describe(current)}); left alone"
                )
                continue
            # Chained on SIGTERM only: the dump, then SIGTERM's own action (the end of the process).
            faulthandler.register(sig, file=self.fd, all_threads=True, chain=sig == _signal.SIGTERM)
            owned.add(sig)
        self.owned = owned

    def after_fork(self) -> None:
        """A forked child: its own file, so its dump never interleaves with the parent's."""
        if self.fd >= 0:
            os.close(self.fd)
        self.open_and_register()

    def handler_installed(self, signalnum: int, handler: object, where: str) -> None:
        """The program set its own handler for ``signalnum``: note it if it replaced ours."""
        if signalnum not in self.owned:
            return
        self.owned.discard(signalnum)
        self.given_up.add(signalnum)
        self.write(
            f"{NOTE_PREFIX}{OWN_HANDLER_NOTE}{self.names[signalnum]} ({_describe(handler)}, "
            f"installed at {where}); crashsight's stack dump on it is replaced"
        )

    def write(self, line: str) -> None:
        """Append one line; a full disk must not break the program, so errors are ignored."""
        if self.fd >= 0:
            try:  # noqa: SIM105 - contextlib is not loaded in every process
                os.write(self.fd, (line.replace("\n", " ") + "\n").encode(errors="replace"))
            except OSError:
                pass  # the supervisor then says it got nothing from this process


_registration: _Registration | None = None


def install() -> None:
    """Register the stack dumps of this process; a no-op outside a runner's tree or when done."""
    global _registration
    folder = os.environ.get(STACKS_DIR_ENV)
    if not folder or _registration is not None:
        return
    name = os.environ.get(DUMP_SIGNAL_ENV) or DEFAULT_DUMP_SIGNAL
    number = getattr(_signal, name, None) if name.startswith("SIG") else None
    if not isinstance(number, int):
        return  # the supervisor validates the name: a foreign value is not ours to act on
    registration = _registration = _Registration(folder, number, name)
    registration.open_and_register()
    os.register_at_fork(after_in_child=registration.after_fork)
    _signal.signal = _watching(_signal.signal, registration)


def dump_before_stop() -> None:
    """Write every thread's stack now, from the calling thread, which holds the GIL.

    The supervisor asks the runner itself over its lifeline (`crashsight.runner.orphan` reads
    the request): no other thread runs Python while this one holds the GIL, so the frames hold
    still, where a signal handler walks them while they change. The stop's SIGTERM that follows
    then dumps only the thread it interrupts (its own frames hold still). Re-registering an
    enabled signal changes only faulthandler's settings, never the disposition: a handler that
    C code set for SIGTERM since stays the program's. Without a file (no stacks here), nothing.
    """
    registration = _registration
    if registration is None or registration.fd < 0:
        return
    if _signal.SIGTERM in registration.owned:
        faulthandler.register(_signal.SIGTERM, file=registration.fd, all_threads=False, chain=True)
    faulthandler.dump_traceback(file=registration.fd, all_threads=True)


def name_thread(ident: int | None, name: str) -> None:
    """Record the name of a thread of crashsight's own: faulthandler prints only its id."""
    if _registration is not None and ident is not None:
        _registration.write(f"{THREAD_PREFIX}{ident:#x} {name}")


def _watching(original: Any, registration: _Registration) -> Any:
    """Wrap ``_signal.signal`` so a handler the program installs for our signals is noted."""

    def signal_signal(signalnum: int, handler: Any) -> Any:
        previous = original(signalnum, handler)
        caller = sys._getframe(1)
        while caller.f_back is not None and caller.f_globals.get("__name__") == "signal":
            caller = caller.f_back  # signal.signal() is the usual way in: name its caller
        registration.handler_installed(
            signalnum, handler, f"{caller.f_code.co_filename}:{caller.f_lineno}"
        )
        return previous

    signal_signal.__name__ = signal_signal.__qualname__ = original.__name__
    signal_signal.__doc__ = original.__doc__
    signal_signal.__wrapped__ = original  # type: ignore[attr-defined]
    return signal_signal


def _describe(handler: object) -> str:
    if handler == _signal.SIG_IGN:
        return "ignored"
    if handler == _signal.SIG_DFL:
        return "the default action"
    if handler is None:
        return "a handler not installed from Python"
    return getattr(handler, "__qualname__", None) or repr(handler)
