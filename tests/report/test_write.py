"""Reports are written atomically: a reader sees the old report or the new one, never half."""

from __future__ import annotations

import json
import threading
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


def test_failed_write_keeps_the_old_report(tmp_path: Path) -> None:
    """A write that fails part-way leaves the previous report in place and no temporary file."""
    target = tmp_path / "r.json"
    write_text_atomically('{"n": 1}', target)
    with pytest.raises(UnicodeEncodeError):
        write_text_atomically("\ud800 lone surrogate", target)
    assert target.read_text() == '{"n": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda p: p / "missing" / "r.json", "does not exist", id="missing-dir"),
        pytest.param(lambda p: p, "is a directory", id="is-a-directory"),
    ],
)
def test_unusable_report_path_is_refused_up_front(
    tmp_path: Path, make: object, message: str
) -> None:
    """A report path that could never be written is refused before any runner starts."""
    assert callable(make)
    with pytest.raises(ConfigurationError, match=message):
        check_report_path(make(tmp_path))
