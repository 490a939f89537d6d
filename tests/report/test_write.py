"""Reports are written atomically: a reader sees the old report or the new one, never half."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crashsight.errors import ConfigurationError
from crashsight.report.write import check_report_path, write_text_atomically


def test_concurrent_reader_never_sees_a_partial_report(tmp_path: Path) -> None:
    """While large reports are rewritten in a loop, every read parses as one whole report."""
    target = tmp_path / "r.json"
    write_text_atomically(json.dumps({"n": -1}), target)
    stop = threading.Event()
    seen: list[int] = []
    errors: list[str] = []

    def read() -> None:
        while not stop.is_set():
            text = target.read_text()
            try:
                seen.append(json.loads(text)["n"])
            except json.JSONDecodeError:
                errors.append(text[:80])

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(200):
            write_text_atomically(json.dumps({"n": n, "pad": "x" * 200_000}), target)
    finally:
        stop.set()
        reader.join()
    assert errors == []
    assert seen == sorted(seen), "reads only move forward"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"], "no temporary file is left"


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs mounted for this test: a real filesystem that really fills up."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mountpoint)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    except OSError as exc:
        pytest.skip(f"cannot run mount(8): {exc}")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


def test_write_that_fills_the_disk_part_way_keeps_the_old_report(tiny_tmpfs: Path) -> None:
    """ENOSPC after part of the new report is on disk: the old report is untouched, the
    temporary file is removed and its blocks are free again."""
    target = tiny_tmpfs / "r.json"
    write_text_atomically('{"n": 1}', target)
    free_before = os.statvfs(tiny_tmpfs).f_bfree
    with pytest.raises(OSError, match="No space left on device") as failure:
        write_text_atomically(json.dumps({"n": 2, "pad": "x" * (1 << 20)}), target)
    assert failure.value.errno == errno.ENOSPC
    assert target.read_text() == '{"n": 1}'
    assert [p.name for p in tiny_tmpfs.iterdir()] == ["r.json"]
    assert os.statvfs(tiny_tmpfs).f_bfree == free_before


#: Writes a 1 MiB report under a 64 KiB file-size limit (the kernel cuts the write short, then
#: refuses with EFBIG; Python ignores SIGXFSZ), then prints the error and what is left.
_FSIZE_PROBE = """
import json, os, resource, sys
from crashsight.report.write import write_text_atomically
target = sys.argv[1]
write_text_atomically('{"n": 1}', target)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))
try:
    write_text_atomically(json.dumps({"n": 2, "pad": "x" * (1 << 20)}), target)
except OSError as exc:
    print(json.dumps({"errno": exc.errno, "files": sorted(os.listdir(os.path.dirname(target)))}))
"""


def test_write_cut_short_by_the_file_size_limit_keeps_the_old_report(tmp_path: Path) -> None:
    """EFBIG part-way through (RLIMIT_FSIZE, any user): old report intact, no temporary file."""
    target = tmp_path / "r.json"
    probe = subprocess.run(
        [sys.executable, "-c", _FSIZE_PROBE, str(target)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(probe.stdout) == {"errno": errno.EFBIG, "files": ["r.json"]}
    assert target.read_text() == '{"n": 1}'


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda p: p / "missing" / "r.json", "does not exist", id="missing-dir"),
        pytest.param(lambda p: p, "is a directory", id="is-a-directory"),
    ],
)
def test_unusable_report_path_is_refused_up_front(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    """A report path that could never be written is refused before any runner starts."""
    with pytest.raises(ConfigurationError, match=message):
        check_report_path(make(tmp_path))
