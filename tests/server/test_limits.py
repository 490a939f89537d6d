"""Responses stay small whatever a job left behind, and say what they cut."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from crashsight.redact import JsonLike
from crashsight.server import JobErrors, Limits, crashsight_app
from crashsight.server.bounds import bound

from .conftest import serving

HF_TOKEN = "hf_" + "A1b2C3d4E5" * 3  # the shape of a Hugging Face token, for the redactor

RECURSION = """
def descend(n):
    if n == 0:
        raise RecursionError("too deep at the bottom")
    descend(n - 1)

descend(60)
"""


def get_errors(folders: tuple[Path, Path], job_id: str, limits: Limits) -> JobErrors:
    """One request to a live endpoint with ``limits`` (no token: this is about sizes)."""
    app = crashsight_app(*folders, unauthenticated=True, limits=limits)
    with serving(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        response = client.get(f"/jobs/{job_id}/errors")
    assert response.status_code == 200, response.text
    return JobErrors.model_validate_json(response.content)


def test_rows_and_strings_are_capped_after_redaction(folders: tuple[Path, Path]) -> None:
    """Rows beyond max_errors are counted; a long line is cut after its secret is masked."""
    _, logs = folders
    long_line = "[2025-12-10 03:58:00] [t] [ERROR] [SFT] " + "x" * 90 + HF_TOKEN + "y" * 50_000
    lines = [
        f"[2025-12-10 03:58:0{i}] [t] [ERROR] [SFT] failure kind {'abcdefgh'[i]}" for i in range(8)
    ]
    (logs / "long.log").write_text("\n".join([long_line, *lines]) + "\n")
    answer = get_errors(folders, "long", Limits(max_errors=5, max_string_chars=100))
    assert len(answer.errors) == 5
    assert answer.more_errors == 4
    assert answer.truncated
    assert "errors[0].template: 4086 chars, kept 100" in answer.truncation
    template = answer.errors[0].template
    assert template is not None
    assert template.endswith("… [+3986 chars]")
    assert all(len(row.message) <= 100 for row in answer.errors)
    text = answer.model_dump_json()
    assert HF_TOKEN[:8] not in text, "no piece of the token survives the cut"
    assert "y" * 101 not in text


def test_long_lists_keep_their_first_and_last_items(folders: tuple[Path, Path]) -> None:
    """A 60-frame traceback keeps its outermost and innermost frames, and says so."""
    reports, _ = folders
    worker = reports.parent / "deep.py"
    worker.write_text(RECURSION)
    subprocess.run(
        [sys.executable, "-m", "crashsight", "run", "--report", str(reports / "deep.json"),
         "--", sys.executable, str(worker)],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    answer = get_errors(folders, "deep", Limits(max_list_items=4))
    error = answer.termination_error
    assert error is not None
    assert [frame.function for frame in error.frames] == [
        "<module>",
        "descend",
        "descend",
        "descend",
    ]
    assert error.frames[-1].code == 'raise RecursionError("too deep at the bottom")'
    assert (
        "termination_error.frames: 62 items, kept the first 2 and the last 2" in answer.truncation
    )


def test_bound_leaves_small_values_and_named_keys_whole() -> None:
    """Nothing under the limits changes; a row list the caller capped itself is not cut again."""
    limits = Limits(max_list_items=2, max_string_chars=80)
    value: JsonLike = {"errors": [1, 2, 3], "frames": [1, 2, 3], "s": "short"}
    assert bound(value, limits, whole=frozenset({"errors"})) == (
        {"errors": [1, 2, 3], "frames": [1, 3], "s": "short"},
        ["frames: 3 items, kept the first 1 and the last 1"],
    )


@pytest.mark.parametrize(
    "options",
    [{"max_errors": 0}, {"cache_entries": 0}, {"max_string_chars": 10}],
)
def test_limits_refuse_values_that_would_hide_everything(options: dict[str, int]) -> None:
    """A limit of zero rows or a string cut too short to read is a mistake, refused at once."""
    with pytest.raises(ValueError, match="Limits"):
        Limits(**options)
