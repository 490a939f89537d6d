"""The phase a failure happened in is the phase the work was in, not the wrapper that logged it."""

from __future__ import annotations

from pathlib import Path

import pytest

from crashsight.diagnostics.analysis import analyze_file
from crashsight.diagnostics.phases import resolve_phase_kind
from crashsight.diagnostics.tracebacks import parse_traceback

TEMPLATE_ERROR = (
    "Failed to apply chat template to record {i}: jinja2.exceptions.TemplateError: "
    "Conversation roles must alternate user/assistant/user/assistant/..."
)
CUDA_OOM = (
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
    "capacity of 23.65 GiB of which 1.12 GiB is free. Including non-PyTorch memory, this process "
    "has 22.52 GiB memory in use. Of the allocated memory 20.10 GiB is allocated by PyTorch, and "
    "1.90 GiB is reserved by PyTorch but unallocated."
)
CHAINED_OOM_IN_EVALUATE = f"""Traceback (most recent call last):
  File "/app/trainer.py", line 212, in evaluate
    outputs = self.model(**batch)
  File "/usr/lib/python3.11/site-packages/torch/nn/modules/module.py", line 1553, in _call_impl
    return forward_call(*args, **kwargs)
{CUDA_OOM}

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/app/main.py", line 40, in run_job
    trainer.evaluate()
  File "/app/main.py", line 12, in main
    raise RuntimeError("job 7f3a failed") from exc
RuntimeError: job 7f3a failed
"""


def line(second: int, module: str, level: str, phase: str, message: str) -> str:
    return f"[2025-12-10 03:58:{second:02d}] [{module}] [{level}] [{phase}] {message}\n"


def training_server_log() -> str:
    """The issue's log: 47 template errors in PreTokenize, then an OOM logged by [Main]."""
    log = line(0, "trainer", "INFO", "Initialization", "loading Qwen/Qwen2.5-0.5B")
    log += "".join(
        line(1, "data", "ERROR", "PreTokenize", TEMPLATE_ERROR.format(i=i)) for i in range(47)
    )
    log += line(2, "trainer", "INFO", "Training", "step 10 loss=1.23")
    log += line(3, "trainer", "INFO", "Evaluation", "running evaluation on 200 samples")
    log += line(4, "main", "ERROR", "Main", "Job failed") + CHAINED_OOM_IN_EVALUATE
    return log


def test_oom_logged_by_a_wrapper_is_out_of_memory_during_evaluation(tmp_path: Path) -> None:
    """The traceback's `evaluate` frame, not the [Main] record, says where the work failed; the
    47 template errors are one config/chat_template row in data preparation."""
    path = tmp_path / "train.log"
    path.write_text(training_server_log())
    result = analyze_file(path)
    analysis = result.analysis
    assert analysis is not None
    assert (analysis.category, analysis.subcategory) == ("gpu", "oom")
    assert (analysis.phase, analysis.phase_kind) == ("Main", "evaluation")
    assert analysis.summary.startswith("gpu/oom during evaluation (phase 'Main'): ")
    assert "from the traceback frame evaluate (trainer.py:212)" in analysis.confidence_basis[1]
    template_row = result.errors[0]
    assert (template_row.count, template_row.phase, template_row.phase_kind) == (
        47,
        "PreTokenize",
        "data",
    )
    assert (template_row.category, template_row.subcategory) == ("config", "chat_template")
    assert template_row.hint is not None


def test_wrapper_phase_without_traceback_takes_the_last_work_phase(tmp_path: Path) -> None:
    """An error logged under [Main] with no traceback belongs to the last work phase before it,
    however many wrapper lines came in between."""
    log = line(0, "trainer", "INFO", "Evaluation", "running evaluation")
    log += "".join(line(1, "main", "INFO", "Main", f"heartbeat {i}") for i in range(30))
    log += line(2, "main", "ERROR", "Main", "RuntimeError: CUDA error: an illegal memory access")
    path = tmp_path / "train.log"
    path.write_text(log)
    analysis = analyze_file(path).analysis
    assert analysis is not None
    assert analysis.phase_kind == "evaluation"
    assert "from the last work phase before it, 'Evaluation'" in analysis.confidence_basis[1]


@pytest.mark.parametrize(
    ("function", "kind"),
    [
        ("prediction_step", "evaluation"),
        ("training_step", "training"),
        ("backward", "training"),
        ("_save_checkpoint", "checkpoint"),
        ("apply_chat_template", "data"),
        ("push_to_hub", "export"),
        ("from_pretrained", "initialization"),
    ],
)
def test_innermost_known_frame_decides(function: str, kind: str) -> None:
    """Frames are read innermost first: `train -> ... -> {function}` is that function's kind."""
    text = (
        "Traceback (most recent call last):\n"
        '  File "/app/run.py", line 3, in train\n    x()\n'
        f'  File "/lib/x.py", line 9, in {function}\n    y()\n'
        "ValueError: boom\n"
    )
    found = resolve_phase_kind(
        phase="Main", exception=parse_traceback(text.splitlines()), work_phase=None, messages=[]
    )
    assert found is not None
    assert (found.kind, found.basis) == (kind, "traceback")


def test_message_words_are_the_last_resort() -> None:
    """Without a phase, frames or marker, 'during evaluation' in the message names the kind."""
    found = resolve_phase_kind(
        phase=None, exception=None, work_phase=None, messages=["NaN loss during evaluation"]
    )
    assert found is not None
    assert (found.kind, found.basis) == ("evaluation", "message")
    assert resolve_phase_kind(phase=None, exception=None, work_phase=None, messages=["x"]) is None


def test_torchrun_rank_prefixes_are_stripped_and_kept_as_rank(tmp_path: Path) -> None:
    """`[rankN]:` prefixes are not part of the message; the traceback header belongs to its
    traceback; the same error on several ranks is one row listing them."""
    text = ""
    for rank in (1, 0):
        text += (
            f"[rank{rank}]: Traceback (most recent call last):\n"
            f'[rank{rank}]:   File "/app/train.py", line 30, in main\n'
            f"[rank{rank}]:     dist.all_reduce(t)\n"
            f"[rank{rank}]: RuntimeError: Connection closed by peer [127.0.0.1]:2950{rank}\n"
        )
    path = tmp_path / "torchrun.log"
    path.write_text(text)
    result = analyze_file(path)
    assert len(result.errors) == 1
    row = result.errors[0]
    assert (row.count, row.rank, row.ranks) == (2, 1, [0, 1])
    assert row.message.startswith("RuntimeError: Connection closed by peer")
    assert not any(r.message.startswith("[rank") for r in result.errors)
    assert result.traceback is not None
    assert result.traceback.exception is not None
    assert result.traceback.exception.frames[-1].function == "main"
    assert result.analysis is not None
    assert "[rank" not in result.analysis.summary
