"""How a supervised call's arguments and result travel between the Ray worker and its runner.

::

    Ray worker                                   runner (child of the worker)
      write_call(fn, args, kwargs) ──call.pkl──▶ read_call() ─▶ fn(*args, **kwargs)
      read_result()               ◀─result.pkl── write_result(value)

Both files live in a private temporary directory (on ``/dev/shm`` when it exists, so the copy is a
memory copy) that the worker removes after the call. The payload is cloudpickled, as Ray pickles
task arguments, so lambdas, closures and classes defined in a script travel too. A file is used
rather than the crashsight channel because the channel carries JSON events of bounded frame size,
and a file lets either side refuse an oversize payload before the other reads it.

The call file also carries the worker's ``sys.path``: a function pickled by reference (a module
the worker imported) must be importable in the runner from the same places. And it carries the
function's source file name, which cloudpickle (3.1 and later) replaces by ``<dynamic-code>`` in
functions it pickles by value: tracebacks and verdicts should name the user's file.

This module is imported in the runner, so it keeps to the standard library; cloudpickle is
imported only to pickle.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "read_call",
    "read_result",
    "scratch_directory",
    "write_call",
    "write_result",
]

#: Largest pickled argument tuple, and largest pickled return value, of one call: 512 MiB.
DEFAULT_MAX_PAYLOAD_BYTES = 512 * 1024 * 1024

#: A tmpfs where present: the payload copy is a memory copy, never a disk write.
_SHM = "/dev/shm"


def scratch_directory() -> Path:
    """A new private directory for one call's files; the caller removes it."""
    parent = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="crashsight-ray-", dir=parent))


def write_call(
    path: Path,
    fn: Callable[..., object],
    args: Sequence[object],
    kwargs: Mapping[str, object],
    limit: int,
) -> None:
    """Pickle the call for the runner.

    Raises:
        PayloadTooLargeError: The pickled call is larger than ``limit`` bytes.
        ConfigurationError: cloudpickle (the ``ray`` extra) is not installed.
    """
    try:
        import cloudpickle
    except ImportError as exc:
        from ..errors import ConfigurationError

        raise ConfigurationError(
            "crashsight.ray pickles calls with cloudpickle, which is not installed: "
            "pip install 'crashsight[ray]'"
        ) from exc

    body = cloudpickle.dumps((fn, tuple(args), dict(kwargs)), protocol=pickle.HIGHEST_PROTOCOL)
    _check_size("the arguments", getattr(fn, "__qualname__", repr(fn)), len(body), limit)
    code = getattr(fn, "__code__", None)
    filename = code.co_filename if isinstance(code, types.CodeType) else None
    header = (list(sys.path), filename)
    path.write_bytes(pickle.dumps((header, body), protocol=pickle.HIGHEST_PROTOCOL))


def read_call(path: str) -> tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]:
    """Load the call in the runner, after making the worker's import path available."""
    with open(path, "rb") as handle:
        (search_path, filename), body = pickle.load(handle)
    sys.path.extend(entry for entry in search_path if entry not in sys.path)
    fn, args, kwargs = pickle.loads(body)
    code = getattr(fn, "__code__", None)
    if filename and isinstance(code, types.CodeType) and code.co_filename != filename:
        fn.__code__ = _with_filename(code, filename)
    return fn, args, kwargs


def write_result(path: str, name: str, value: object, limit: int) -> None:
    """Pickle the return value in the runner.

    Raises:
        PayloadTooLargeError: The pickled value is larger than ``limit`` bytes (the runner then
            fails with this error as its verdict, and nothing is written).
    """
    import cloudpickle

    data = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    _check_size("the return value", name, len(data), limit)
    with open(path, "wb") as handle:
        handle.write(data)


def read_result(path: Path) -> object:
    """Load the return value the runner wrote."""
    return pickle.loads(path.read_bytes())


def _with_filename(code: types.CodeType, filename: str) -> types.CodeType:
    """``code`` and the code of the functions defined inside it, as compiled from ``filename``."""
    consts = tuple(
        _with_filename(const, filename) if isinstance(const, types.CodeType) else const
        for const in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)


def _check_size(what: str, name: str, size: int, limit: int) -> None:
    if size > limit:
        from .errors import PayloadTooLargeError

        raise PayloadTooLargeError(
            f"{what} of {name} pickle to {size / 2**20:.1f} MiB, over the limit of "
            f"{limit / 2**20:.1f} MiB (max_payload_bytes): pass a path or URL and load large data "
            "inside the task, or raise the limit"
        )
