"""`read_kernel_text` and `write_kernel_text`: what `Path.read_text`/`write_text` gave, cheaper."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import pytest

from crashsight.diagnostics.kernelfiles import read_kernel_text, write_kernel_text


def test_a_proc_file_reads_as_path_read_text_does() -> None:
    assert (
        read_kernel_text("/proc/self/status").splitlines()[0]
        == (Path("/proc/self/status").read_text().splitlines()[0])
    )


def test_a_file_of_records_longer_than_one_read_is_read_whole() -> None:
    """The kernel returns whole records per read, short of the size asked for: a sleeping
    process's smaps (tens of KiB, stable while it sleeps) must come back complete."""
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        for _ in range(1000):  # until it has exec'd sleep and sleeps: then its maps hold still
            fields = Path(f"/proc/{sleeper.pid}/stat").read_text().split()
            if fields[1] == "(sleep)" and fields[2] == "S":
                break
            time.sleep(0.01)
        path = f"/proc/{sleeper.pid}/smaps"
        expected = Path(path).read_text()
        assert len(expected) > 2 * 4096
        assert read_kernel_text(path) == expected
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_file_longer_than_one_read_is_read_whole(tmp_path: Path) -> None:
    text = "".join(f"line {i}\n" for i in range(3000))  # ~26 KB: several reads
    (tmp_path / "long").write_text(text)
    assert read_kernel_text(tmp_path / "long") == text


def test_bytes_that_are_not_utf8_are_replaced_not_raised(tmp_path: Path) -> None:
    (tmp_path / "odd").write_bytes(b"oom_kill 1\n\xff\n")
    assert read_kernel_text(tmp_path / "odd") == "oom_kill 1\n\ufffd\n"


def test_a_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_kernel_text(tmp_path / "gone")
    with pytest.raises(FileNotFoundError):
        write_kernel_text(tmp_path / "gone", "1")  # a control file is never created


def test_a_value_the_kernel_refuses_raises(tmp_path: Path) -> None:
    """A real refusal: /proc/self/oom_score_adj takes -1000..1000 and rejects anything else."""
    before = read_kernel_text("/proc/self/oom_score_adj")
    with pytest.raises(OSError, match="Invalid argument") as refused:
        write_kernel_text("/proc/self/oom_score_adj", "5000")
    assert refused.value.errno == errno.EINVAL
    write_kernel_text("/proc/self/oom_score_adj", before.strip())
    assert read_kernel_text(f"/proc/{os.getpid()}/oom_score_adj") == before
