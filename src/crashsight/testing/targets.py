"""The injectors as runner targets: ``python -m crashsight.runner crashsight.testing.targets:NAME``.

The bootstrap calls a target with no arguments and ``sys.argv == [TARGET, *ARGS]``; each function
here parses ``ARGS`` into the parameters of the injector of the same name and calls it. They are
built from one table at the end of this module. Every target also accepts the
options of `crashsight.testing.injectors.delayed`::

    python -m crashsight.runner crashsight.testing.targets:exit 3
    python -m crashsight.runner crashsight.testing.targets:segfault --task shard-7 --after-events 2
    python -m crashsight.runner crashsight.testing.targets:raise_ ValueError "bad shard 3"
    python -m crashsight.runner crashsight.testing.targets:emit_signature cuda.oom --sample 1

``--help`` prints a target's arguments. Bad arguments end the runner with argparse's usage
message and status 2, before anything is injected.
"""

from __future__ import annotations

import argparse
import builtins
import sys

from . import injectors

TYPE_CHECKING = False  # not typing's: see crashsight/__init__.py (and injectors)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeAlias

    #: One argparse argument: its name or flag, and `add_argument` keywords. Its destination is
    #: the name of the injector's parameter it fills.
    _Argument: TypeAlias = tuple[str, dict[str, Any]]

__all__ = [
    "abort",
    "bus_error",
    "close_channel",
    "emit_signature",
    "enospc",
    "exit",
    "garbage_frame",
    "hang",
    "http_get",
    "ignore_sigterm",
    "leave_grandchild",
    "memory_error",
    "raise_",
    "segfault",
    "sigkill",
    "stderr_flood",
]


def _target(
    name: str, injector: Callable[..., object], *arguments: _Argument
) -> Callable[[], None]:
    """A no-argument target that parses ``sys.argv[1:]`` into ``injector``'s parameters."""

    def target() -> None:
        parser = _parser(name)
        for flag, options in arguments:
            parser.add_argument(flag, **options)
        values = vars(parser.parse_args(sys.argv[1:]))
        delay = {key: values.pop(key) for key in ("after_events", "after_seconds", "tasks")}
        injectors.delayed(lambda: injector(**values), **delay)

    target.__name__ = target.__qualname__ = name
    target.__doc__ = f"``{__name__}:{name}``: see `crashsight.testing.injectors.{name}`."
    return target


def _parser(name: str) -> argparse.ArgumentParser:
    """A parser with the `injectors.delayed` options every target shares."""
    parser = argparse.ArgumentParser(
        prog=f"python -m crashsight.runner {__name__}:{name}",
        description=(getattr(injectors, name).__doc__ or "").partition("\n")[0],
    )
    delay = parser.add_argument_group("delay (see crashsight.testing.injectors.delayed)")
    delay.add_argument("--task", action="append", default=[], dest="tasks", metavar="ID")
    delay.add_argument("--after-events", type=int, default=0, metavar="N")
    delay.add_argument("--after-seconds", type=float, default=0.0, metavar="T")
    return parser


def _exception_class(name: str) -> type[BaseException]:
    """``ValueError`` → the builtin; ``package.module.Class`` → imported from its module."""
    module, _, attr = name.rpartition(".")
    try:
        found = getattr(__import__(module, fromlist=[attr]) if module else builtins, attr)
    except (ImportError, AttributeError):
        found = None
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise argparse.ArgumentTypeError(f"{name!r} names no exception class")
    return found


def _raise_named(exc_type: type[BaseException], message: str | None) -> None:
    injectors.raise_(exc_type() if message is None else exc_type(message))


abort = _target("abort", injectors.abort)
bus_error = _target("bus_error", injectors.bus_error)
close_channel = _target("close_channel", injectors.close_channel)
emit_signature = _target(
    "emit_signature",
    injectors.emit_signature,
    ("signature_id", {"metavar": "ID", "help": "a catalogue id, such as cuda.oom"}),
    ("--sample", {"type": int, "default": 0, "metavar": "N"}),
)
enospc = _target("enospc", injectors.enospc)
exit = _target("exit", injectors.exit, ("code", {"type": int, "help": "the exit status"}))
garbage_frame = _target("garbage_frame", injectors.garbage_frame)
http_get = _target(
    "http_get",
    injectors.http_get,
    ("url", {"metavar": "URL"}),
    ("--timeout", {"type": float, "default": 10.0, "metavar": "S"}),
)
hang = _target(
    "hang",
    injectors.hang,
    ("--heartbeat-interval", {"type": float, "default": None, "metavar": "S"}),
)
ignore_sigterm = _target("ignore_sigterm", injectors.ignore_sigterm)
leave_grandchild = _target(
    "leave_grandchild", injectors.leave_grandchild, ("--hold-stderr", {"action": "store_true"})
)
memory_error = _target("memory_error", injectors.memory_error)
raise_ = _target(
    "raise_",
    _raise_named,
    (
        "exc_type",
        {
            "type": _exception_class,
            "metavar": "TYPE",
            "help": "ValueError, or package.module.Class",
        },
    ),
    ("message", {"nargs": "?", "default": None}),
)
segfault = _target("segfault", injectors.segfault)
sigkill = _target("sigkill", injectors.sigkill)
stderr_flood = _target(
    "stderr_flood", injectors.stderr_flood, ("n_bytes", {"type": int, "metavar": "N_BYTES"})
)
