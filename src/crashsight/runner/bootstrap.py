"""The runner bootstrap: ``python -m crashsight.runner TARGET [ARGS...]``.

(A supervisor starts it with `BOOTSTRAP_COMMAND` instead of ``-m``, to the same effect.)

``TARGET`` is ``package.module:function`` or ``path/to/file.py:function``; the function is called
with no arguments (plain or ``async def``) and sees ``sys.argv == [TARGET, *ARGS]``.

Order of work, and why:

0. Wait at the start gate, when the supervisor set one, until it has moved this process into the
   runner's cgroup (`crashsight.runner.gate`): nothing of the worker runs outside it.
1. Enable faulthandler on fd 2 for all threads first, so even a crash while importing the target
   leaves a stack dump in the stderr that the supervisor tails; register the stack dumps the
   supervisor asks for before a stop (`crashsight.runner.stackdump`), which the ``.pth`` hook has
   usually done already.
2. Open the channel and send `Ready`, so the supervisor can tell "never started" from "died early".
3. Start a thread that watches the channel's lifeline (`crashsight.runner.orphan`): end-of-file
   means the supervisor died, and the worker stops itself instead of living on as an orphan
   (this works where ``PR_SET_PDEATHSIG`` does not exist, such as macOS); the one thing the
   supervisor writes there is a request for the stacks before a stop, which this thread answers.
4. Import the target (phase ``bootstrap``), then call it (phase ``target``). On an exception, send a
   `RunnerTerminationError`, print the usual traceback to stderr, and exit with status 1.
   `SystemExit` keeps its code; `KeyboardInterrupt` is reported, then re-raised so the process ends
   the way Python ends on SIGINT.
"""

from __future__ import annotations

import faulthandler
import os
import sys

from .api import connect, send_termination
from .channel import BOOTSTRAP_ENV
from .gate import wait_for_start_gate
from .orphan import watch_for_supervisor_death
from .stackdump import install as install_stack_dumps

TYPE_CHECKING = False  # not typing's: see crashsight/__init__.py
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Literal, NoReturn, TypeGuard


__all__ = ["BOOTSTRAP_COMMAND", "load_target", "main"]

#: How a supervisor starts a cold runner: ``python -c`` this, then the target and its arguments.
#: Not ``-m crashsight.runner``: runpy imports importlib.util, and with it contextlib, functools,
#: collections and warnings, which this module avoids (5.5 ms of a 28 ms start, measured).
BOOTSTRAP_COMMAND = ("-c", "from crashsight.runner.bootstrap import main; main()")

_USAGE = (
    "usage: python -m crashsight.runner package.module:function|path/file.py:function [ARGS...]"
)


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the target named in ``argv`` (default ``sys.argv[1:]``) under the runner protocol."""
    args = sys.argv[1:] if argv is None else argv
    if not args or ":" not in args[0]:
        print(_USAGE, file=sys.stderr)
        raise SystemExit(2)
    if sys.path[:1] == [""]:  # started by BOOTSTRAP_COMMAND: the start directory, as -m has it
        sys.path[0] = os.getcwd()
    wait_for_start_gate()
    _enable_faulthandler()
    install_stack_dumps()
    # Programs this runner starts are not bootstrapped: their own .pth hook may report for them.
    os.environ.pop(BOOTSTRAP_ENV, None)
    spec = args[0]
    channel = connect(target=spec)
    if channel is not None:
        watch_for_supervisor_death(channel)
    sys.argv = list(args)
    phase: Literal["bootstrap", "target"] = "bootstrap"
    try:
        target = load_target(spec)
        phase = "target"
        result = target()
        if _is_awaitable(result):
            import asyncio  # only async targets pay for it: this module loads in every worker

            asyncio.run(_await(result))
    except SystemExit:
        raise
    except KeyboardInterrupt as exc:
        send_termination(exc, phase)
        raise
    except BaseException as exc:
        send_termination(exc, phase)
        # The interpreter's own printer, as for an uncaught exception: the traceback module
        # (with linecache and tokenize) is not imported by every worker just for this.
        sys.__excepthook__(type(exc), exc, exc.__traceback__)
        raise SystemExit(1) from None
    raise SystemExit(0)


def load_target(spec: str) -> Callable[[], object]:
    """Import ``module:attr`` or ``file.py:attr`` and return the callable it names.

    Raises:
        ImportError: The module or file cannot be imported.
        AttributeError: The module has no such attribute.
        TypeError: The attribute is not callable.
    """
    where, _, name = spec.rpartition(":")
    if where.endswith(".py") or os.sep in where:
        path = os.path.realpath(where)
        stem = os.path.splitext(os.path.basename(path))[0]
        from importlib.util import module_from_spec, spec_from_file_location  # file targets only

        module_spec = spec_from_file_location(stem, path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load {where!r} as a Python file", path=path)
        module = module_from_spec(module_spec)
        sys.modules[stem] = module
        module_spec.loader.exec_module(module)
    else:
        __import__(where)  # what importlib.import_module does, without loading importlib
        module = sys.modules[where]
    obj: object = module
    for part in name.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"target {spec!r} is {type(obj).__name__}, not a callable")
    return obj


def _is_awaitable(value: object) -> TypeGuard[Awaitable[object]]:
    """What `collections.abc.Awaitable` checks, without loading collections in every worker."""
    return hasattr(type(value), "__await__")


async def _await(awaitable: Awaitable[object]) -> None:
    await awaitable


def _enable_faulthandler() -> None:
    # Set but empty, PYTHONFAULTHANDLER says the user wants it off, and we respect that. Set,
    # it enabled the handler at start-up, except in a runner forked from the zygote, whose
    # interpreter started with the supervisor's environment.
    if os.environ.get("PYTHONFAULTHANDLER") != "" and not faulthandler.is_enabled():
        faulthandler.enable(file=sys.__stderr__ or sys.stderr, all_threads=True)
