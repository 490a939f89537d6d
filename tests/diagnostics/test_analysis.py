from __future__ import annotations

import traceback
from pathlib import Path

import pytest

from crashsight.diagnostics.analysis import analyze_file
from crashsight.diagnostics.analysis_model import AnalyzeResult
from crashsight.diagnostics.phases import phase_kind
from crashsight.redact import Redactor

STEP = "[2025-12-10 03:58:{s:02d}] [trainer] [INFO] [{phase}] step {i}\n"
OOM = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.95 GiB. GPU 0 has a total "
    "capacity of 14.57 GiB of which 1.58 GiB is free."
)


def chained_traceback() -> str:
    """A real chained traceback, as Python prints it."""

    def load() -> None:
        raise KeyError("labels")

    try:
        try:
            load()
        except KeyError as exc:
            raise ValueError("batch 17 is malformed") from exc
    except ValueError as exc:
        return "".join(traceback.format_exception(exc))
    raise AssertionError("unreachable")


def write(tmp_path: Path, text: str | bytes, name: str = "train.log") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return path


def analyze(path: Path) -> AnalyzeResult:
    return analyze_file(path, redactor=Redactor(env={}))


def test_chained_traceback_is_recovered_with_frames_and_chain(tmp_path: Path) -> None:
    """A logged chained traceback gives the outermost exception, its cause, and their frames."""
    log = STEP.format(s=1, phase="SFT", i=1)
    log += "[2025-12-10 03:58:02] [trainer] [ERROR] [SFT] step failed\n" + chained_traceback()
    log += STEP.format(s=3, phase="SFT", i=2)
    result = analyze(write(tmp_path, log))
    assert result.traceback is not None
    assert result.traceback.complete
    assert [(link.relation, link.type, link.message) for link in result.traceback.chain] == [
        ("raised", "ValueError", "batch 17 is malformed"),
        ("cause", "KeyError", "'labels'"),
    ]
    exception = result.traceback.exception
    assert exception is not None
    assert exception.cause is not None
    assert exception.frames[-1].function == "chained_traceback"
    assert [f.function for f in exception.cause.frames] == ["chained_traceback", "load"]
    [row] = result.errors
    assert row.traceback == result.traceback
    assert (row.category, row.subcategory) == ("python", "ValueError")
    assert result.analysis is not None
    assert result.analysis.phase == "SFT"


@pytest.mark.parametrize(
    ("eval_start", "phase", "source"),
    [
        pytest.param(
            "[2025-12-10 03:58:10] [trainer] [INFO] [EVAL] start", "EVAL", "field", id="field"
        ),
        pytest.param("***** Running Evaluation *****", "eval", "marker", id="marker"),
    ],
)
def test_cuda_oom_in_eval_phase_is_gpu_oom_with_eval_advice(
    tmp_path: Path, eval_start: str, phase: str, source: str
) -> None:
    """A CUDA OOM after evaluation started is gpu/oom in phase eval, with eval-specific advice."""
    log = "".join(STEP.format(s=i, phase="SFT", i=i) for i in range(5))
    log += eval_start + "\n" + "Traceback (most recent call last):\n"
    log += '  File "/app/eval.py", line 40, in evaluate\n    logits = model(batch)\n' + OOM + "\n"
    result = analyze(write(tmp_path, log))
    analysis = result.analysis
    assert analysis is not None
    assert (analysis.category, analysis.subcategory) == ("gpu", "oom")
    assert (analysis.phase, analysis.phase_kind) == (phase, "evaluation")
    assert any("eval batch size" in s or "eval_batch_size" in s for s in analysis.suggestions)
    assert "CUDA caching allocator" in analysis.description
    assert "during evaluation" in analysis.summary
    # A phase field is sure; a marker is less sure than the traceback's frame, which then decides.
    expected = 0.9 * (1.0 if source == "field" else 0.95)
    assert analysis.confidence == pytest.approx(expected, abs=0.01)
    assert analysis.confidence_basis[0].startswith("catalogue signature cuda.oom")
    assert result.errors[analysis.error_index or 0].signatures == ["cuda.oom"]


def test_missing_file_is_unusable(tmp_path: Path) -> None:
    """A missing file is status 'missing' with a message naming it."""
    result = analyze(tmp_path / "nope.log")
    assert result.status == "missing"
    assert "nope.log: no such file" in result.message


def test_empty_file_is_unusable(tmp_path: Path) -> None:
    """An empty file says so instead of claiming a clean run."""
    result = analyze(write(tmp_path, ""))
    assert (result.status, result.errors) == ("empty", [])
    assert "empty" in result.message


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\0" * 100_000, id="nul"),
        pytest.param(bytes(range(256)) * 400, id="binary"),
    ],
)
def test_binary_file_is_unusable(tmp_path: Path, data: bytes) -> None:
    """A file of NUL bytes or binary data is not read as a log."""
    result = analyze(write(tmp_path, data))
    assert result.status == "binary"
    assert "not a text log" in result.message


def test_file_cut_mid_traceback_reports_what_is_there(tmp_path: Path) -> None:
    """What is there is analysed (the cause that was printed in full); the cut is noted and costs
    confidence."""
    full = chained_traceback()
    cut = full[: full.rindex("ValueError: batch 17")]  # the outermost exception line is missing
    log = "[2025-12-10 03:58:01] [m] [ERROR] [SFT] first\n" + cut
    result = analyze(write(tmp_path, log))
    assert result.status == "errors"
    assert result.truncated
    assert result.traceback is not None
    assert not result.traceback.complete
    assert result.errors[0].message == "first"
    assert any("ends inside the traceback" in note for note in result.notes)
    analysis = result.analysis
    assert analysis is not None
    assert (analysis.category, analysis.subcategory) == ("python", "KeyError")
    assert analysis.confidence == pytest.approx(0.75 * 0.9, abs=0.01)
    assert "the log is truncated" in analysis.confidence_basis[-1]


def test_nul_padded_log_is_analysed_with_a_note(tmp_path: Path) -> None:
    """A log whose tail is NUL bytes (preallocated, then the writer crashed) is still a log."""
    log = ("x" * 70 + "\n") * 20_000 + "ERROR:root:disk gone\n"
    result = analyze(write(tmp_path, log.encode() + b"\0" * 4096))
    assert result.status == "errors"
    assert [row.message for row in result.errors] == ["disk gone"]
    assert any("4096 NUL bytes" in note for note in result.notes)


def test_clean_log(tmp_path: Path) -> None:
    """A log without errors is status 'clean' and has no analysis."""
    result = analyze(write(tmp_path, STEP.format(s=1, phase="SFT", i=1)))
    assert (result.status, result.analysis, result.stats.lines) == ("clean", None, 1)


def test_secrets_never_reach_the_result(tmp_path: Path) -> None:
    """URL passwords and tokens in error lines are redacted from every field of the result."""
    token = "hf_" + "a1B2" * 8
    log = f"ERROR:root:download of https://alice:s3cret@hub.example/m failed with {token}\n"
    dumped = analyze(write(tmp_path, log)).model_dump_json()
    assert "s3cret" not in dumped
    assert token not in dumped
    assert "https://***@hub.example" in dumped


@pytest.mark.parametrize(
    ("phase", "kind"),
    [("EVAL", "evaluation"), ("Validation", "evaluation"), ("PreTokenize", "data"),
     ("SFT", "training"), ("save_checkpoint", "checkpoint"), ("push_to_hub", "export"),
     ("ModelLoading", "initialization"), ("Watchdog", "monitoring"), ("warmup", None),
     ("Main", None), (None, None)],
)  # fmt: skip
def test_phase_kind(phase: str | None, kind: str | None) -> None:
    """Phase names as logs spell them map to a canonical kind, or to none."""
    assert phase_kind(phase) == kind
