"""`crashsight analyze` as a user runs it: a real subprocess, real exit codes, real files."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from crashsight.diagnostics.analysis_model import AnalyzeResult

CRASHSIGHT = [sys.executable, "-m", "crashsight", "analyze"]
TOKEN = "hf_" + "Zq9x" * 8
LOG = (
    "[2025-12-10 03:58:20] [trainer] [INFO] [SFT] step 1 loss 0.5\n"
    "[2025-12-10 03:58:21] [trainer] [INFO] [EVAL] Running evaluation\n"
    "[2025-12-10 03:58:22] [trainer] [ERROR] [EVAL] upload to https://bob:hunter22@hub.io/x "
    f"failed, token {TOKEN}\n"
    "Traceback (most recent call last):\n"
    '  File "/app/eval.py", line 40, in evaluate\n'
    "    logits = model(batch)\n"
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.95 GiB. GPU 0 has a total "
    "capacity of 14.57 GiB of which 1.58 GiB is free.\n"
)


def analyze(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CRASHSIGHT, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_text_summary_and_exit_status_1_on_errors(tmp_path: Path) -> None:
    """The human summary names the verdict, the phase and the advice; errors found exit 1."""
    log = tmp_path / "train.log"
    log.write_text(LOG)
    result = analyze(str(log))
    assert result.returncode == 1, result.stderr
    assert "gpu/oom during evaluation (phase 'EVAL')" in result.stdout
    assert "evaluation batch size" in result.stdout
    assert "hunter22" not in result.stdout
    assert TOKEN not in result.stdout


def test_json_output_validates_and_holds_no_secrets(tmp_path: Path) -> None:
    """--format json prints a document the pydantic schema accepts, with secrets redacted."""
    log = tmp_path / "train.log"
    log.write_text(LOG)
    result = analyze("--format", "json", str(log))
    assert result.returncode == 1, result.stderr
    parsed = AnalyzeResult.model_validate_json(result.stdout)
    assert parsed.analysis is not None
    assert parsed.analysis.phase_kind == "evaluation"
    assert "hunter22" not in result.stdout
    assert TOKEN not in result.stdout
    assert "https://***@hub.io" in parsed.errors[0].message


def test_output_file_gets_json_whatever_the_format(tmp_path: Path) -> None:
    """--output writes the JSON result while stdout keeps the text summary."""
    log, out = tmp_path / "train.log", tmp_path / "result.json"
    log.write_text(LOG)
    result = analyze("--output", str(out), str(log))
    assert result.stdout.startswith("crashsight analyze:")
    assert AnalyzeResult.model_validate_json(out.read_text()).status == "errors"


def test_clean_log_exits_0(tmp_path: Path) -> None:
    """A log without errors exits 0."""
    log = tmp_path / "train.log"
    log.write_text("[2025-12-10 03:58:20] [trainer] [INFO] [SFT] step 1\n")
    result = analyze(str(log))
    assert result.returncode == 0, result.stderr
    assert "no errors in 1 line\n" in result.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(None, "no such file", id="missing"),
        pytest.param(b"", "the file is empty", id="empty"),
        pytest.param(b"\0\1\2\3" * 5000, "not a text log", id="binary"),
    ],
)
def test_unusable_input_exits_2_with_a_message(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    """Missing, empty and binary files exit 2 and say why on stderr, once."""
    log = tmp_path / "train.log"
    if content is not None:
        log.write_bytes(content)
    result = analyze("--format", "json", str(log))
    assert result.returncode == 2
    assert expected in result.stderr
    assert AnalyzeResult.model_validate_json(result.stdout).errors == []
    text = analyze(str(log))
    assert text.returncode == 2
    assert text.stderr.count(expected) == 1, "said once, on stderr"
    assert text.stdout == ""


def one_mib_block() -> tuple[bytes, int, int]:
    """A 1 MiB slice of a training log: steps, templated PreTokenize errors, logged tracebacks.

    Returns:
        The block, and how many PreTokenize errors and tracebacks it holds.
    """
    parts, size, step, errors, tracebacks = [], 0, 0, 0, 0
    while size < (1 << 20) - 1024:
        line = f"[2025-12-10 03:58:{step % 60:02d}] [trainer] [INFO] [SFT] step {step} loss 0.{step:04d}\n"
        if step % 997 == 500:
            errors += 1
            line += (
                f"[2025-12-10 04:00:{step % 60:02d}] [__main__] [ERROR] [PreTokenize] Failed to "
                f"tokenize /data/shard_{step:05d}.jsonl at byte {step * 31}\n"
            )
        if step % 3001 == 1500:
            tracebacks += 1
            line += (
                f"[2025-12-10 04:01:{step % 60:02d}] [trainer] [ERROR] [SFT] step {step} skipped\n"
                "Traceback (most recent call last):\n"
                '  File "/app/train.py", line 88, in step\n'
                "    loss = model(batch)\n"
                f"ValueError: batch {step} has no labels\n"
            )
        parts.append(line)
        size += len(line)
        step += 1
    text = "".join(parts)
    return (text + "#" * ((1 << 20) - len(text) - 1) + "\n").encode(), errors, tracebacks


@pytest.mark.timeout(120)
def test_one_gigabyte_log_in_bounded_memory(tmp_path: Path) -> None:
    """A 1 GiB log is analysed in a subprocess under 100 MiB peak RSS, with exact counts."""
    block, errors, tracebacks = one_mib_block()
    assert len(block) == 1 << 20
    log = tmp_path / "big.log"
    with log.open("wb") as handle:
        for _ in range(1024):
            handle.write(block)
    wrapper = (
        "import resource, subprocess, sys\n"
        "with open(sys.argv[1], 'wb') as out:\n"
        "    code = subprocess.run(sys.argv[2:], stdout=out, check=False).returncode\n"
        "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    output = tmp_path / "result.json"
    started = time.monotonic()
    try:
        measured = subprocess.run(
            [sys.executable, "-c", wrapper, str(output), *CRASHSIGHT, "--format", "json", str(log)],
            capture_output=True,
            text=True,
            timeout=110,
            check=True,
        )
    finally:
        log.unlink()
    elapsed = time.monotonic() - started
    code, peak_kib = map(int, measured.stdout.split())
    result = AnalyzeResult.model_validate_json(output.read_text())
    print(f"1 GiB in {elapsed:.1f} s ({1024 / elapsed:.0f} MiB/s), peak RSS {peak_kib // 1024} MiB")
    assert code == 1
    assert peak_kib < 100 * 1024
    assert result.stats.bytes == 1 << 30
    counts = {row.phase: row.count for row in result.errors}
    assert counts == {"PreTokenize": errors * 1024, "SFT": tracebacks * 1024}
