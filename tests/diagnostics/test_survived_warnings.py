"""Problems a worker survived do not outrank what killed it (real texts, through crashsight run).

The warning lines are real: torch c10d's rendezvous retry (torch/csrc/distributed/c10d/socket.cpp),
huggingface_hub's download retry, and fairseq's "ran out of memory ... Skipping batch".
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

C10D_RETRY = (
    "[W socket.cpp:663] [c10d] The client socket has failed to connect to "
    "[::ffff:127.0.0.1]:29500 (errno: 111 - Connection refused)."
)
HF_RETRY = (
    "'(ReadTimeoutError(\"HTTPSConnectionPool(host='cdn-lfs.huggingface.co', port=443): Read "
    "timed out. (read timeout=10)\"), '(Request ID: 1f1e)')' thrown while requesting GET "
    "https://huggingface.co/gpt2/resolve/main/model.safetensors Retrying in 1s [Retry 1/5]."
)
FAIRSEQ_OOM = (
    "| WARNING: ran out of memory with exception: CUDA out of memory. Tried to allocate 1.53 GiB "
    "(GPU 0; 10.76 GiB total capacity; 8.12 GiB already allocated); Skipping batch"
)


@pytest.mark.parametrize(
    ("warning", "death", "verdict"),
    [
        pytest.param(C10D_RETRY, "raise ValueError('batch size')", "python/ValueError", id="c10d"),
        pytest.param(HF_RETRY, "raise KeyError('input_ids')", "python/KeyError", id="hf-retry"),
        pytest.param(
            FAIRSEQ_OOM, "open('/dev/full', 'w').write('x' * 100000)", "disk/enospc", id="fairseq"
        ),
        pytest.param(
            "",
            "class ShardError(Exception): pass\nraise ShardError('shard 7 corrupt')",
            "python/ShardError",
            id="own-exception-class",
        ),
    ],
)
def test_the_exception_that_killed_the_worker_decides(
    tmp_path: Path, warning: str, death: str, verdict: str
) -> None:
    """A signature on a warning line is evidence; the fatal exception gives the verdict.

    Run with ``python -S``, so the traceback is read from stderr as for any uninstrumented
    program, including exception classes of the program's own.
    """
    script = tmp_path / "worker.py"
    script.write_text(f"import sys\nprint({warning!r}, file=sys.stderr)\n{death}\n")
    report = tmp_path / "r.json"
    subprocess.run(
        [sys.executable, "-m", "crashsight", "run", "--report", str(report),
         "--", sys.executable, "-S", str(script)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    data = json.loads(report.read_text())
    assert f"{data['category']}/{data['subcategory']}" == verdict, data["summary"]
    if warning:
        assert data["diagnostics"][0]["evidence_only"] is True
