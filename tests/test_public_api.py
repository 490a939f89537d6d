"""The public API: `__all__` is exactly what the package exports, and the runner stays light."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import crashsight
import crashsight.runner


def _type_checking_imports() -> dict[str, str]:
    """Names imported under ``if TYPE_CHECKING:`` in crashsight/__init__.py, with their modules."""
    tree = ast.parse(Path(crashsight.__file__).read_text())
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for alias in node.names:
                found[alias.asname or alias.name] = f"crashsight.{node.module}"
    return found


def test_all_matches_exports() -> None:
    """`__all__`, the lazy export table and the type checkers' imports name the same things."""
    exports = vars(crashsight)["_EXPORTS"]
    assert set(crashsight.__all__) == set(exports)
    assert _type_checking_imports() == exports
    for name in crashsight.__all__:
        value = getattr(crashsight, name)
        assert getattr(importlib.import_module(exports[name]), name) is value
    assert set(crashsight.runner.__all__) == {"emit", "heartbeat", "progress", "task"}


def test_unknown_attribute_is_an_attribute_error() -> None:
    """A typo in a public name fails like any module attribute would."""
    with pytest.raises(AttributeError, match="Supervisr"):
        _ = crashsight.Supervisr


def test_runner_start_up_stays_light() -> None:
    """A worker that starts and announces itself loads no supervisor stack and no pydantic.

    `crashsight.runner` loads in every worker; pydantic and the wire models cost about 85 ms of
    start-up, so a worker's own events are written without them (see `crashsight.runner.api`). Nor does it load the
    standard library's heavier modules for its own use (json and re, socket's wrapper, enum,
    typing; threading, contextlib and functools, which load collections; importlib, which loads
    warnings; struct, whose C module alone was 0.5 ms; types, for an annotation): together they
    were most of the runner's import.
    """
    code = (
        "import os, _socket, sys;"
        "ours, theirs = _socket.socketpair();"
        "os.environ['CRASHSIGHT_CHANNEL_FD'] = str(theirs.fileno());"
        "import crashsight.runner, crashsight.runner.bootstrap, crashsight.runner.sitehook;"
        "from crashsight.runner.api import connect; connect('t:main');"
        "heavy = ('anyio', 'psutil', 'pydantic', 'crashsight.supervisor', 'crashsight.protocol',"
        " 'json', 're', 'socket', 'selectors', 'enum', 'typing', 'threading', 'contextlib',"
        " 'functools', 'collections', 'importlib', 'warnings', 'struct', '_struct', 'types');"
        "print(','.join(sorted(m for m in heavy if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


#: A runner target that names the heavy modules already loaded when it starts, and its sys.path[0].
LOADED_AT_START = """
import os, sys

def main():
    heavy = ("runpy", "importlib", "importlib.util", "contextlib", "functools", "collections",
             "warnings", "threading", "typing", "pydantic", "anyio", "types",
             "crashsight.runner.sitehook")
    loaded = sorted(m for m in heavy if m in sys.modules)
    print("loaded:" + ",".join(loaded), "path0:" + sys.path[0], "cwd:" + os.getcwd(), file=sys.stderr)
"""


@pytest.mark.asyncio
async def test_a_cold_runner_starts_as_light_as_its_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supervisor does not start runners with ``-m`` (runpy would load importlib.util and,
    through it, contextlib, functools and collections), yet the target's ``sys.path[0]`` is the
    absolute start directory, as ``-m`` makes it. Nor does crashsight's ``.pth`` hook load the
    exception hook for plain programs: the bootstrap reports itself (1-1.5 ms of every cold start,
    measured side by side)."""
    (tmp_path / "loaded_at_start.py").write_text(LOADED_AT_START)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    async with crashsight.Supervisor(output="discard", cgroup="off") as supervisor:
        runner = await supervisor.spawn("loaded_at_start:main", cwd=str(tmp_path))
        status = await runner.wait()
    [line] = [line for line in status.stderr_tail if line.startswith("loaded:")]
    assert line == f"loaded: path0:{tmp_path} cwd:{tmp_path}"
