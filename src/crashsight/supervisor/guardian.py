"""A guardian process that kills the runners' process groups and cgroups if the supervisor is killed.

``PR_SET_PDEATHSIG`` (the exec shim) and the bootstrap's lifeline watch stop a runner's *own*
process when the supervisor dies, but not the rest of its group: ``crashsight run -- bash -c
'sleep 600 | cat'`` SIGKILLed would leave ``sleep`` and ``cat`` running. So each supervisor starts
one small guardian (``python -S`` running this file: standard library only) in a session of its
own, and tells it over a pipe which process groups, runner cgroups and stack-dump folders are
live::

    supervisor ──stdin pipe: "+4242\n" (runner started), "-4242\n" (runner reaped),
                             "+c {json}\n" (cgroups made), "-c name\n" (removed),
                             "+d {json}\n" (folder made), "-d {json}\n" (removed)──► guardian

The guardian holds the pipe's read end and nothing else. When the pipe reaches end-of-file (the
supervisor exited, however it died), it SIGKILLs every group still listed, kills everything in
every cgroup still listed and removes those cgroups, removes the folders still listed (a killed
supervisor would otherwise leave one in the temporary folder per runner), then exits. A
supervisor that closes normally has reaped every runner and removed its cgroups and folders
first, so nothing is left to do.

The guardian runs this file with ``python -S`` and the standard library only (plus `cgroupfs`,
also standard library only, when it has cgroups to remove): a few milliseconds per supervisor.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .cgroup import RunnerCgroup

__all__ = ["Guardian"]
#: How long the guardian keeps killing a cgroup's members before it removes what it can.
_KILL_WITHIN_S = 5.0


class Guardian:
    """The supervisor's handle on its guardian process."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-S", os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C to crashsight's group must not end the guardian
        )

    def watch(
        self, pgid: int, cgroup: RunnerCgroup | None = None, folder: Path | None = None
    ) -> None:
        """A runner started: kill its group, kill and remove its cgroups, remove its temporary
        folder if the supervisor dies (one write for all three)."""
        lines = [f"+{pgid}\n"]
        if cgroup is not None:
            spec = {
                "v2": None if cgroup.v2 is None else str(cgroup.v2),
                "v1": [str(path) for path in cgroup.v1.values()],
                "kill_file": cgroup.host.kill_file,
            }
            lines.append(f"+c {json.dumps(spec)}\n")
        if folder is not None:
            lines.append(f"+d {json.dumps(str(folder))}\n")
        self._send("".join(lines))

    def forget(self, pgid: int, folder: Path | None = None) -> None:
        """The runner was reaped and its group swept, its folder removed: nothing left to guard."""
        self._send(f"-{pgid}\n" + (f"-d {json.dumps(str(folder))}\n" if folder else ""))

    def forget_cgroup(self, cgroup: RunnerCgroup) -> None:
        """The runner's cgroups were removed."""
        self._send(f"-c {json.dumps(str(cgroup.folders[0]))}\n")

    def close(self) -> None:
        """End the guardian (it kills any group still listed) and reap it."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def _send(self, line: str) -> None:
        stdin = self._proc.stdin
        if stdin is None or stdin.closed:
            return
        try:
            stdin.write(line.encode())
            stdin.flush()
        except OSError:
            pass  # the guardian is gone; the shim and lifeline watch still protect the runners


def _guard() -> None:
    """The guardian's side: track groups from stdin; at end-of-file, kill what is left."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    live: set[int] = set()
    cgroups: dict[str, tuple[Path | None, list[Path], bool]] = {}
    folders: set[str] = set()
    for raw in sys.stdin.buffer:
        line = raw.strip()
        if line[:3] == b"+d ":
            folders.add(json.loads(line[3:]))
        elif line[:3] == b"-d ":
            folders.discard(json.loads(line[3:]))
        elif line[:3] == b"+c ":
            spec = json.loads(line[3:])
            v2 = Path(spec["v2"]) if spec["v2"] else None
            v1 = [Path(folder) for folder in spec["v1"]]
            cgroups[str(v2 or v1[0])] = (v2, v1, bool(spec["kill_file"]))
        elif line[:3] == b"-c ":
            cgroups.pop(json.loads(line[3:]), None)
        elif line[:1] == b"+":
            live.add(int(line[1:]))
        elif line[:1] == b"-":
            live.discard(int(line[1:]))
    for pgid in live:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            continue
    if cgroups:
        # Absolute, and only now: this file runs as a script, with crashsight's folder on the path.
        from crashsight.supervisor.cgroupfs import kill_all, remove_all

        for v2, v1, kill_file in cgroups.values():
            kill_all(v2, v1, kill_file=kill_file, within=_KILL_WITHIN_S)
            remove_all([*([v2] if v2 is not None else []), *v1])
    if folders:
        # Last: a process alive until the kills above could have written into them.
        import shutil

        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # no site: find crashsight
    _guard()
